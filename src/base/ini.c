#include "ini.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

int ini_complain(ini_problem *p, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(p->text, sizeof p->text, fmt, args);
  va_end(args);
  return -1;
}

static const char *type_name(ini_type type) {
  switch (type) {
  case INI_INT:
  case INI_INT64:
  case INI_UINT64:
    return "int";
  case INI_FLOAT:
    return "float";
  case INI_BOOL:
    return "bool";
  case INI_STRING:
    return "string";
  case INI_ENUM:
    return "enum";
  }
  return "?";
}

static size_t section_length(const char *name) {
  return (size_t)(strchr(name, '.') - name);
}

static const ini_key *find_key(const ini_schema *s, const char *name) {
  for (int i = 0; i < s->key_count; i++)
    if (!strcmp(s->keys[i].name, name)) return &s->keys[i];
  return NULL;
}

static int section_known(const ini_schema *s, const char *section) {
  size_t n = strlen(section);
  for (int i = 0; i < s->key_count; i++)
    if (section_length(s->keys[i].name) == n && !strncmp(s->keys[i].name, section, n)) return 1;
  return 0;
}

/* "data, model, ..." in table order, for error messages. */
static void list_sections(const ini_schema *s, char *buf, size_t cap) {
  const ini_key *keys = s->keys;
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < s->key_count; i++) {
    size_t len = section_length(keys[i].name);
    if (i > 0 && len == section_length(keys[i - 1].name) &&
        !strncmp(keys[i].name, keys[i - 1].name, len))
      continue;
    int n = snprintf(buf + used, cap - used, "%s%.*s", used ? ", " : "", (int)len, keys[i].name);
    if (n < 0 || (size_t)n >= cap - used) return;
    used += (size_t)n;
  }
}

static void format_range(const ini_key *k, char *buf, size_t cap) {
  switch (k->type) {
  case INI_BOOL:
    snprintf(buf, cap, "true|false");
    break;
  case INI_ENUM:
    snprintf(buf, cap, "%s", k->words);
    break;
  case INI_STRING:
    snprintf(buf, cap, "-");
    break;
  default:
    if (isinf(k->max))
      snprintf(buf, cap, "%c%.15g, inf)", k->min_open ? '(' : '[', k->min);
    else
      snprintf(buf, cap, "%c%.15g, %.15g]", k->min_open ? '(' : '[', k->min, k->max);
  }
}

static int out_of_range(const ini_key *k, const char *text, ini_problem *p) {
  char range[64];
  format_range(k, range, sizeof range);
  return ini_complain(p, "%s is out of range %s", text, range);
}

static int check_range(const ini_key *k, const char *text, double value, ini_problem *p) {
  if (value < k->min || (k->min_open && value == k->min) || value > k->max)
    return out_of_range(k, text, p);
  return 0;
}

static int word_in_list(const char *word, const char *list) {
  size_t n = strlen(word);
  for (const char *w = list; w; w = strchr(w, '|')) {
    if (*w == '|') w++;
    size_t len = strcspn(w, "|");
    if (len == n && !strncmp(w, word, n)) return 1;
  }
  return 0;
}

/* Whether the string reads back unchanged from `key = value`: values are trimmed, and a '#' or
 * ';' at the start or after whitespace begins a comment. Matters for command-line overrides. */
static int survives_ini(const char *s) {
  size_t n = strlen(s);
  if (n && (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t')) return 0;
  for (size_t i = 0; i < n; i++) {
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 0;
    if ((s[i] == '#' || s[i] == ';') && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t')) return 0;
  }
  return 1;
}

/* Parses text as key k's value and stores it in cfg; leaves cfg alone on error. */
static int set_value(void *cfg, const ini_key *k, const char *text, ini_problem *p) {
  void *field = (char *)cfg + k->offset;
  char *end = NULL;
  if (!*text && k->type != INI_STRING) return ini_complain(p, "empty value");
  errno = 0;
  switch (k->type) {
  case INI_INT:
  case INI_INT64: {
    long long v = strtoll(text, &end, 10);
    if (*end) return ini_complain(p, "'%s' is not an integer", text);
    if (errno == ERANGE || (k->type == INI_INT && (v < INT_MIN || v > INT_MAX)))
      return out_of_range(k, text, p);
    if (check_range(k, text, (double)v, p)) return -1;
    if (k->type == INI_INT)
      *(int *)field = (int)v;
    else
      *(int64_t *)field = v;
    return 0;
  }
  case INI_UINT64: {
    /* strtoull accepts "-1" and negates it. */
    if (strchr(text, '-')) return ini_complain(p, "'%s' is not an unsigned integer", text);
    unsigned long long v = strtoull(text, &end, 10);
    if (*end) return ini_complain(p, "'%s' is not an unsigned integer", text);
    if (errno == ERANGE) return out_of_range(k, text, p);
    if (check_range(k, text, (double)v, p)) return -1;
    *(uint64_t *)field = v;
    return 0;
  }
  case INI_FLOAT: {
    double v = strtod(text, &end);
    if (*end) return ini_complain(p, "'%s' is not a number", text);
    if (errno == ERANGE) return out_of_range(k, text, p);
    if (!isfinite(v)) return ini_complain(p, "'%s' is not a finite number", text);
    if (check_range(k, text, v, p)) return -1;
    *(double *)field = v;
    return 0;
  }
  case INI_BOOL:
    if (word_in_list(text, "true|yes|1"))
      *(int *)field = 1;
    else if (word_in_list(text, "false|no|0"))
      *(int *)field = 0;
    else
      return ini_complain(p, "'%s' is not a bool (true|false|yes|no|1|0)", text);
    return 0;
  case INI_ENUM:
    if (!word_in_list(text, k->words))
      return ini_complain(p, "'%s' is not one of %s", text, k->words);
    break;
  case INI_STRING:
    if (!survives_ini(text))
      return ini_complain(p,
                          "'%s' cannot be written back to a job file (control character, "
                          "edge whitespace, or '#'/';' at the start or after whitespace)",
                          text);
    break;
  }
  size_t n = strlen(text);
  if (n >= k->size)
    return ini_complain(p, "value is %zu characters long; at most %zu allowed", n, k->size - 1);
  memset(field, 0, k->size);
  memcpy(field, text, n);
  return 0;
}

static void format_value(const void *cfg, const ini_key *k, char *buf, size_t cap) {
  const void *field = (const char *)cfg + k->offset;
  switch (k->type) {
  case INI_INT:
    snprintf(buf, cap, "%d", *(const int *)field);
    break;
  case INI_INT64:
    snprintf(buf, cap, "%lld", (long long)*(const int64_t *)field);
    break;
  case INI_UINT64:
    snprintf(buf, cap, "%llu", (unsigned long long)*(const uint64_t *)field);
    break;
  case INI_BOOL:
    snprintf(buf, cap, "%s", *(const int *)field ? "true" : "false");
    break;
  case INI_STRING:
  case INI_ENUM:
    snprintf(buf, cap, "%s", (const char *)field);
    break;
  case INI_FLOAT: {
    /* Shortest text that reads back as the same double. */
    double v = *(const double *)field;
    for (int digits = 1; digits <= 17; digits++) {
      snprintf(buf, cap, "%.*g", digits, v);
      if (strtod(buf, NULL) == v) break;
    }
    break;
  }
  }
}

static size_t storage_size(ini_type type) {
  switch (type) {
  case INI_INT:
  case INI_BOOL:
    return sizeof(int);
  case INI_INT64:
    return sizeof(int64_t);
  case INI_UINT64:
    return sizeof(uint64_t);
  case INI_FLOAT:
    return sizeof(double);
  case INI_STRING:
  case INI_ENUM:
    break;
  }
  return 0;
}

char *ini_trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
    s[--n] = '\0';
  return s;
}

static void strip_comment(char *line) {
  for (char *c = line; *c; c++) {
    if ((*c == '#' || *c == ';') && (c == line || c[-1] == ' ' || c[-1] == '\t')) {
      *c = '\0';
      return;
    }
  }
}

static void load_file(const ini_schema *s, void *cfg, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) FP_FATAL("cannot open job file %s: %s", path, strerror(errno));
  int *first_seen_line = fp_calloc((size_t)s->key_count, sizeof *first_seen_line);
  char section[64] = "";
  char *buf = NULL;
  size_t buf_cap = 0;
  int line_no = 0;
  while (getline(&buf, &buf_cap, f) >= 0) {
    line_no++;
    char *line = ini_trim(buf);
    strip_comment(line);
    line = ini_trim(line);
    if (!*line) continue;
    if (*line == '[') {
      size_t n = strlen(line);
      if (line[n - 1] != ']')
        FP_FATAL("%s:%d: malformed section header '%s' (expected [section])", path, line_no, line);
      line[n - 1] = '\0';
      char *name = ini_trim(line + 1);
      if (strlen(name) >= sizeof section || !section_known(s, name)) {
        char sections[256];
        list_sections(s, sections, sizeof sections);
        FP_FATAL("%s:%d: unknown section [%s] (sections: %s)", path, line_no, name, sections);
      }
      strcpy(section, name);
      continue;
    }
    char *equals = strchr(line, '=');
    if (!equals) FP_FATAL("%s:%d: malformed line '%s' (expected key = value)", path, line_no, line);
    *equals = '\0';
    char *key = ini_trim(line), *value = ini_trim(equals + 1);
    if (!*key) FP_FATAL("%s:%d: malformed line '= %s' (no key before '=')", path, line_no, value);
    if (!*section) FP_FATAL("%s:%d: key '%s' before any [section]", path, line_no, key);
    char full_name[256];
    snprintf(full_name, sizeof full_name, "%s.%s", section, key);
    const ini_key *k = find_key(s, full_name);
    if (!k) FP_FATAL("%s:%d: unknown key %s (see --help for the keys)", path, line_no, full_name);
    int index = (int)(k - s->keys);
    if (first_seen_line[index])
      FP_FATAL("%s:%d: %s: duplicate key, already set on line %d", path, line_no, k->name,
               first_seen_line[index]);
    first_seen_line[index] = line_no;
    ini_problem p;
    if (set_value(cfg, k, value, &p)) FP_FATAL("%s:%d: %s: %s", path, line_no, k->name, p.text);
  }
  int read_failed = ferror(f);
  free(first_seen_line);
  free(buf);
  fclose(f);
  FP_CHECK(!read_failed, "error reading job file %s", path);
}

static void apply_override(const ini_schema *s, void *cfg, const char *text) {
  size_t n = strlen(text);
  char *copy = fp_malloc(n + 1);
  memcpy(copy, text, n + 1);
  char *equals = strchr(copy, '=');
  if (!equals) FP_FATAL("command line: malformed override '%s' (expected section.key=value)", text);
  *equals = '\0';
  char *key = ini_trim(copy), *value = ini_trim(equals + 1);
  const ini_key *k = find_key(s, key);
  if (!k)
    FP_FATAL("command line: unknown key %s in override '%s' (see --help for the keys)", key, text);
  ini_problem p;
  if (set_value(cfg, k, value, &p)) FP_FATAL("command line: %s: %s", k->name, p.text);
  free(copy);
}

void ini_load(const ini_schema *schema, void *cfg, const char *path, int override_count,
              char **overrides) {
  load_file(schema, cfg, path);
  for (int i = 0; i < override_count; i++) apply_override(schema, cfg, overrides[i]);
}

void ini_defaults(const ini_schema *schema, void *cfg, size_t cfg_size) {
  memset(cfg, 0, cfg_size);
  for (int i = 0; i < schema->key_count; i++) {
    const ini_key *k = &schema->keys[i];
    FP_CHECK(k->offset + k->size <= cfg_size, "config schema: %s lies outside %s", k->name,
             schema->struct_name);
    size_t expected = storage_size(k->type);
    FP_CHECK(!expected || expected == k->size, "config schema: %s has type %s but a %zu-byte field",
             k->name, type_name(k->type), k->size);
    ini_problem p;
    if (set_value(cfg, k, k->default_text, &p))
      FP_FATAL("config schema: default of %s: %s", k->name, p.text);
  }
}

static void append(const ini_schema *s, char *buf, size_t cap, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void append(const ini_schema *s, char *buf, size_t cap, size_t *used, const char *fmt, ...) {
  FP_CHECK(*used < cap, "%s_to_ini: buffer of %zu bytes is too small", s->struct_name, cap);
  va_list args;
  va_start(args, fmt);
  int n = vsnprintf(buf + *used, cap - *used, fmt, args);
  va_end(args);
  FP_CHECK(n >= 0 && (size_t)n < cap - *used, "%s_to_ini: buffer of %zu bytes is too small",
           s->struct_name, cap);
  *used += (size_t)n;
}

size_t ini_to_text(const ini_schema *schema, const void *cfg, char *buf, size_t cap) {
  size_t used = 0;
  const char *section = NULL;
  size_t section_len = 0;
  for (int i = 0; i < schema->key_count; i++) {
    const ini_key *k = &schema->keys[i];
    size_t len = section_length(k->name);
    if (!section || len != section_len || strncmp(k->name, section, len)) {
      append(schema, buf, cap, &used, "%s[%.*s]\n", section ? "\n" : "", (int)len, k->name);
      section = k->name;
      section_len = len;
    }
    char value[4200];
    format_value(cfg, k, value, sizeof value);
    append(schema, buf, cap, &used, "%s =%s%s\n", k->name + len + 1, *value ? " " : "", value);
  }
  return used;
}

void ini_print_help(const ini_schema *schema, FILE *out) {
  int name_width = 20;
  for (int i = 0; i < schema->key_count; i++)
    if ((int)strlen(schema->keys[i].name) > name_width)
      name_width = (int)strlen(schema->keys[i].name);
  fprintf(out, "  %-*s %-6s %-13s %-14s %s\n", name_width, "key", "type", "default", "range",
          "meaning");
  for (int i = 0; i < schema->key_count; i++) {
    const ini_key *k = &schema->keys[i];
    char range[64], shown_default[64];
    format_range(k, range, sizeof range);
    snprintf(shown_default, sizeof shown_default, "%s",
             *k->default_text ? k->default_text : "\"\"");
    fprintf(out, "  %-*s %-6s %-13s %-14s %s\n", name_width, k->name, type_name(k->type),
            shown_default, range, k->help);
  }
}
