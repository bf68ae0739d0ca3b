/* A small strict JSON (RFC 8259) reader for annotation files: the whole
 * document becomes a tree. Errors name the file, line and column. */
#ifndef FP_JSON_H
#define FP_JSON_H

#include <stddef.h>

typedef enum json_type {
  JSON_NULL,
  JSON_FALSE,
  JSON_TRUE,
  JSON_NUMBER,
  JSON_STRING,
  JSON_ARRAY,
  JSON_OBJECT
} json_type;

typedef struct json_value json_value;
struct json_value {
  json_type type;
  int line, column;  /* where the value starts, 1-based, for messages */
  double number;     /* JSON_NUMBER */
  char *string;      /* JSON_STRING: UTF-8, NUL-terminated (\u0000 is rejected) */
  int count;         /* JSON_ARRAY elements or JSON_OBJECT members */
  json_value *items; /* [count]: array elements or member values, in document order */
  char **keys;       /* [count]: JSON_OBJECT member names */
};

/* Parses the file `path`. Returns the root value (free with json_free) or NULL
 * with "path:line:column: what" in `error`. Objects with a repeated key,
 * trailing commas, comments, leading zeros, control characters in strings,
 * invalid UTF-8 escapes and anything after the value are errors. */
json_value *json_parse_file(const char *path, char *error, size_t error_size);
/* The same on text[length]; `name` stands for the file in messages. */
json_value *json_parse_text(const char *text, size_t length, const char *name, char *error,
                            size_t error_size);
void json_free(json_value *root);

/* The member `key` of an object, or NULL (also when `object` is not one). */
const json_value *json_member(const json_value *object, const char *key);
/* 1 when v is a number with an integer value in [min, max] (stored in *out). */
int json_integer(const json_value *v, long long min, long long max, long long *out);
const char *json_type_name(json_type type);

#endif
