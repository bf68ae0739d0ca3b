/* Schema-driven INI job files, shared by every command that reads one (train's
 * train_config in config.c, parse_catalog's catalog_job). Syntax: `[section]`
 * headers, `key = value` lines, `#`/`;` comments at the start of a line or after
 * whitespace (jobs/README.md). A schema is a table of keys, each naming its
 * `section.key`, type, default, range and the field of the caller's struct that
 * holds it; `section.key=value` overrides from the command line are applied after
 * the file. Every error exits 1 via FP_FATAL naming the file, the line and the key
 * (or "command line"). */
#ifndef FP_INI_H
#define FP_INI_H

#include <stddef.h>
#include <stdio.h>

typedef enum ini_type {
  INI_INT,    /* int */
  INI_INT64,  /* int64_t */
  INI_UINT64, /* uint64_t */
  INI_FLOAT,  /* double */
  INI_BOOL,   /* int, 0/1 */
  INI_STRING, /* char[size] */
  INI_ENUM    /* char[size], one of `words` */
} ini_type;

typedef struct ini_key {
  const char *name; /* section.key */
  ini_type type;
  size_t offset, size;      /* of the field in the caller's struct */
  const char *default_text; /* parsed exactly like a value in a job file */
  double min, max;          /* numeric keys; max INFINITY = no upper bound */
  int min_open;             /* min itself is not allowed */
  const char *words;        /* INI_ENUM: the allowed words, '|'-separated */
  const char *help;
} ini_key;

/* .offset and .size of `member` in `type`, for an ini_key initialiser. */
#define INI_FIELD(type, member)                                                                    \
  .offset = offsetof(type, member), .size = sizeof(((type *)0)->member)

typedef struct ini_schema {
  const char *struct_name; /* names the struct in messages, e.g. "train_config" */
  const ini_key *keys;
  int key_count;
} ini_schema;

/* Zeroes the struct (cfg_size bytes, so equal values compare equal with memcmp)
 * and sets every key to its default. */
void ini_defaults(const ini_schema *schema, void *cfg, size_t cfg_size);
/* Loads path, then applies the overrides in order. Unknown sections/keys,
 * malformed lines, a key set twice in one file, values that do not parse, are
 * out of range, not in the enum or too long are errors. */
void ini_load(const ini_schema *schema, void *cfg, const char *path, int override_count,
              char **overrides);
/* The resolved configuration as INI text, every key in table order; returns the
 * length written (without the NUL). Exits 1 if cap is too small. */
size_t ini_to_text(const ini_schema *schema, const void *cfg, char *buf, size_t cap);
/* Every key with type, default, range and help (for --help). */
void ini_print_help(const ini_schema *schema, FILE *out);
/* Error detail for a value, filled in by a parser and reported with its location. */
typedef struct ini_problem {
  char text[1400];
} ini_problem;
/* Formats the detail into p and returns -1. */
int ini_complain(ini_problem *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strips leading and trailing blanks (and a trailing CR/LF) in place. */
char *ini_trim(char *s);

#endif
