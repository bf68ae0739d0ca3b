#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hash.h"

#define JSON_MAX_DEPTH 256
#define JSON_MAX_NUMBER_LENGTH 255

typedef struct parser {
  const char *text, *name;
  size_t length, pos;
  int line;
  size_t line_start; /* offset of the current line's first byte */
  char *error;
  size_t error_size;
} parser;

static int column_at(const parser *p, size_t pos) {
  return (int)(pos - p->line_start) + 1;
}

static int fail_at(parser *p, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_at(parser *p, size_t pos, const char *fmt, ...) {
  int written =
      snprintf(p->error, p->error_size, "%s:%d:%d: ", p->name, p->line, column_at(p, pos));
  if (written >= 0 && (size_t)written < p->error_size) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(p->error + written, p->error_size - (size_t)written, fmt, args);
    va_end(args);
  }
  return -1;
}

static int peek(const parser *p) {
  return p->pos < p->length ? (unsigned char)p->text[p->pos] : -1;
}

static void skip_whitespace(parser *p) {
  for (; p->pos < p->length; p->pos++) {
    char c = p->text[p->pos];
    if (c == '\n') {
      p->line++;
      p->line_start = p->pos + 1;
    } else if (c != ' ' && c != '\t' && c != '\r') {
      return;
    }
  }
}

static const char *describe(int c, char *buffer, size_t size) {
  if (c < 0) return "the end of the file";
  if (c >= 0x20 && c < 0x7f)
    snprintf(buffer, size, "'%c'", c);
  else
    snprintf(buffer, size, "byte 0x%02x", c);
  return buffer;
}

static int unexpected(parser *p, const char *expected) {
  char buffer[16];
  return fail_at(p, p->pos, "expected %s, found %s", expected,
                 describe(peek(p), buffer, sizeof buffer));
}

static void free_contents(json_value *v) {
  for (int i = 0; i < v->count; i++) {
    free_contents(&v->items[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  free(v->string);
}

/* A growing byte string. */
typedef struct text_builder {
  char *bytes;
  size_t length, capacity;
} text_builder;

static void append_byte(text_builder *b, char c) {
  if (b->length + 1 >= b->capacity) {
    b->capacity = b->capacity ? 2 * b->capacity : 32;
    b->bytes = realloc(b->bytes, b->capacity);
    FP_CHECK(b->bytes, "out of memory");
  }
  b->bytes[b->length++] = c;
  b->bytes[b->length] = '\0';
}

static void append_utf8(text_builder *b, uint32_t code) {
  if (code < 0x80) {
    append_byte(b, (char)code);
  } else if (code < 0x800) {
    append_byte(b, (char)(0xc0 | code >> 6));
    append_byte(b, (char)(0x80 | (code & 0x3f)));
  } else if (code < 0x10000) {
    append_byte(b, (char)(0xe0 | code >> 12));
    append_byte(b, (char)(0x80 | (code >> 6 & 0x3f)));
    append_byte(b, (char)(0x80 | (code & 0x3f)));
  } else {
    append_byte(b, (char)(0xf0 | code >> 18));
    append_byte(b, (char)(0x80 | (code >> 12 & 0x3f)));
    append_byte(b, (char)(0x80 | (code >> 6 & 0x3f)));
    append_byte(b, (char)(0x80 | (code & 0x3f)));
  }
}

static int read_hex4(parser *p, uint32_t *code) {
  *code = 0;
  for (int i = 0; i < 4; i++) {
    int c = peek(p);
    int digit = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
    if (digit < 0) return unexpected(p, "a hexadecimal digit of a \\u escape");
    *code = *code * 16 + (uint32_t)digit;
    p->pos++;
  }
  return 0;
}

/* After "\u": one code point, a surrogate pair taken together. */
static int read_unicode_escape(parser *p, size_t escape_pos, text_builder *b) {
  uint32_t code;
  if (read_hex4(p, &code)) return -1;
  if (code >= 0xdc00 && code <= 0xdfff)
    return fail_at(p, escape_pos, "\\u%04x is a lone low surrogate", (unsigned)code);
  if (code >= 0xd800 && code <= 0xdbff) {
    uint32_t low;
    if (p->pos + 1 >= p->length || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u')
      return fail_at(p, escape_pos, "\\u%04x (a high surrogate) is not followed by a low one",
                     (unsigned)code);
    p->pos += 2;
    if (read_hex4(p, &low)) return -1;
    if (low < 0xdc00 || low > 0xdfff)
      return fail_at(p, escape_pos, "\\u%04x (a high surrogate) is followed by \\u%04x",
                     (unsigned)code, (unsigned)low);
    code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
  }
  if (code == 0) return fail_at(p, escape_pos, "\\u0000 is not supported in strings");
  append_utf8(b, code);
  return 0;
}

/* One raw UTF-8 sequence starting at p->pos (lead byte >= 0x80), copied. */
static int copy_utf8_sequence(parser *p, text_builder *b) {
  const unsigned char *s = (const unsigned char *)p->text + p->pos;
  size_t left = p->length - p->pos;
  int extra = s[0] >= 0xc2 && s[0] <= 0xdf   ? 1
              : s[0] >= 0xe0 && s[0] <= 0xef ? 2
              : s[0] >= 0xf0 && s[0] <= 0xf4 ? 3
                                             : -1;
  int valid = extra > 0 && (size_t)extra < left;
  for (int i = 1; valid && i <= extra; i++) valid = (s[i] & 0xc0) == 0x80;
  /* overlong 3- and 4-byte forms, UTF-16 surrogates, beyond U+10FFFF */
  if (valid && s[0] == 0xe0 && s[1] < 0xa0) valid = 0;
  if (valid && s[0] == 0xed && s[1] >= 0xa0) valid = 0;
  if (valid && s[0] == 0xf0 && s[1] < 0x90) valid = 0;
  if (valid && s[0] == 0xf4 && s[1] >= 0x90) valid = 0;
  if (!valid) return fail_at(p, p->pos, "invalid UTF-8 in a string");
  for (int i = 0; i <= extra; i++) append_byte(b, (char)s[i]);
  p->pos += (size_t)extra + 1;
  return 0;
}

static int parse_string(parser *p, char **out) {
  size_t start = p->pos++; /* the opening quote */
  text_builder b = {NULL, 0, 0};
  append_byte(&b, '\0'); /* an empty string is "" too */
  b.length = 0;
  for (;;) {
    int c = peek(p);
    if (c < 0 || c == '\n') {
      free(b.bytes);
      return fail_at(p, start, "string not closed on its line");
    }
    if (c == '"') {
      p->pos++;
      *out = b.bytes;
      return 0;
    }
    if (c < 0x20) {
      free(b.bytes);
      return fail_at(p, p->pos, "control character 0x%02x in a string (escape it)", c);
    }
    if (c >= 0x80) {
      if (copy_utf8_sequence(p, &b)) {
        free(b.bytes);
        return -1;
      }
      continue;
    }
    if (c != '\\') {
      append_byte(&b, (char)c);
      p->pos++;
      continue;
    }
    size_t escape_pos = p->pos;
    p->pos++;
    int e = peek(p);
    const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
    const char *known = e > 0 ? strchr(from, e) : NULL;
    if (known) {
      append_byte(&b, to[known - from]);
      p->pos++;
    } else if (e == 'u') {
      p->pos++;
      if (read_unicode_escape(p, escape_pos, &b)) {
        free(b.bytes);
        return -1;
      }
    } else {
      free(b.bytes);
      char buffer[16];
      if (e > 0x20 && e < 0x7f) return fail_at(p, escape_pos, "invalid escape \\%c in a string", e);
      return fail_at(p, escape_pos, "a backslash before %s in a string",
                     describe(e, buffer, sizeof buffer));
    }
  }
}

static int is_digit(int c) {
  return c >= '0' && c <= '9';
}

static int parse_number(parser *p, json_value *v) {
  size_t start = p->pos;
  if (peek(p) == '-') p->pos++;
  if (peek(p) == '0') {
    p->pos++;
    if (is_digit(peek(p))) return fail_at(p, start, "number with a leading zero");
  } else if (is_digit(peek(p))) {
    while (is_digit(peek(p))) p->pos++;
  } else {
    return unexpected(p, "a digit");
  }
  if (peek(p) == '.') {
    p->pos++;
    if (!is_digit(peek(p))) return unexpected(p, "a digit after the decimal point");
    while (is_digit(peek(p))) p->pos++;
  }
  if (peek(p) == 'e' || peek(p) == 'E') {
    p->pos++;
    if (peek(p) == '+' || peek(p) == '-') p->pos++;
    if (!is_digit(peek(p))) return unexpected(p, "a digit in the exponent");
    while (is_digit(peek(p))) p->pos++;
  }
  size_t length = p->pos - start;
  if (length > JSON_MAX_NUMBER_LENGTH)
    return fail_at(p, start, "number longer than %d characters", JSON_MAX_NUMBER_LENGTH);
  char digits[JSON_MAX_NUMBER_LENGTH + 1];
  memcpy(digits, p->text + start, length);
  digits[length] = '\0';
  char *end;
  errno = 0;
  v->number = strtod(digits, &end);
  if (end != digits + length) return fail_at(p, start, "cannot read number '%s'", digits);
  if (isinf(v->number)) return fail_at(p, start, "number %s is out of range", digits);
  v->type = JSON_NUMBER;
  return 0;
}

static int parse_value(parser *p, json_value *v, int depth);

/* A growing array of values (and keys, for objects). */
static int add_slot(json_value *v, int capacity, int with_keys) {
  if (v->count < capacity) return capacity;
  capacity = capacity ? 2 * capacity : 4;
  v->items = realloc(v->items, (size_t)capacity * sizeof *v->items);
  FP_CHECK(v->items, "out of memory");
  if (with_keys) {
    v->keys = realloc(v->keys, (size_t)capacity * sizeof *v->keys);
    FP_CHECK(v->keys, "out of memory");
  }
  return capacity;
}

static int parse_array(parser *p, json_value *v, int depth) {
  v->type = JSON_ARRAY;
  p->pos++;
  skip_whitespace(p);
  if (peek(p) == ']') {
    p->pos++;
    return 0;
  }
  for (int capacity = 0;;) {
    capacity = add_slot(v, capacity, 0);
    json_value *element = &v->items[v->count];
    memset(element, 0, sizeof *element);
    if (parse_value(p, element, depth + 1)) {
      free_contents(element);
      return -1;
    }
    v->count++;
    skip_whitespace(p);
    if (peek(p) == ']') {
      p->pos++;
      return 0;
    }
    if (peek(p) != ',') return unexpected(p, "',' or ']' in an array");
    p->pos++;
  }
}

/* The member names seen so far in one object, for the repeated-key check: a linear scan while
 * the object is small, an open-addressing hash table of member indices beyond (a hostile file
 * with 100 k members would otherwise take O(n^2) comparisons). */
enum { KEY_SCAN_LIMIT = 16 };

typedef struct key_index {
  int *slots; /* member index + 1, 0 = empty */
  size_t size;
} key_index;

static uint64_t key_hash(const char *key) {
  return fnv1a64(key, strlen(key));
}

/* Adds member `index` of v (its key is v->keys[index]); returns 1 if the key was already there. */
static int key_index_add(key_index *ki, const json_value *v, int index) {
  if (index < KEY_SCAN_LIMIT) {
    for (int k = 0; k < index; k++)
      if (!strcmp(v->keys[k], v->keys[index])) return 1;
    if (index + 1 < KEY_SCAN_LIMIT) return 0;
  }
  if ((size_t)(index + 1) * 2 > ki->size) { /* grow and re-insert every earlier member */
    free(ki->slots);
    ki->size = ki->size ? 2 * ki->size : 4 * KEY_SCAN_LIMIT;
    while ((size_t)(index + 1) * 2 > ki->size) ki->size *= 2;
    ki->slots = fp_calloc(ki->size, sizeof *ki->slots);
    for (int k = 0; k < index; k++) {
      size_t s = key_hash(v->keys[k]) & (ki->size - 1);
      while (ki->slots[s]) s = (s + 1) & (ki->size - 1);
      ki->slots[s] = k + 1;
    }
  }
  size_t s = key_hash(v->keys[index]) & (ki->size - 1);
  for (; ki->slots[s]; s = (s + 1) & (ki->size - 1))
    if (!strcmp(v->keys[ki->slots[s] - 1], v->keys[index])) return 1;
  ki->slots[s] = index + 1;
  return 0;
}

static int parse_members(parser *p, json_value *v, int depth, key_index *keys);

static int parse_object(parser *p, json_value *v, int depth) {
  key_index keys = {NULL, 0};
  int status = parse_members(p, v, depth, &keys);
  free(keys.slots);
  return status;
}

static int parse_members(parser *p, json_value *v, int depth, key_index *keys) {
  v->type = JSON_OBJECT;
  p->pos++;
  skip_whitespace(p);
  if (peek(p) == '}') {
    p->pos++;
    return 0;
  }
  for (int capacity = 0;;) {
    skip_whitespace(p);
    if (peek(p) != '"') return unexpected(p, "a member name in double quotes");
    size_t key_pos = p->pos;
    char *key;
    if (parse_string(p, &key)) return -1;
    capacity = add_slot(v, capacity, 1);
    v->keys[v->count] = key;
    if (key_index_add(keys, v, v->count)) {
      int status = fail_at(p, key_pos, "member \"%s\" appears twice in an object", key);
      free(key);
      return status;
    }
    skip_whitespace(p);
    if (peek(p) != ':') {
      free(key);
      return unexpected(p, "':' after a member name");
    }
    p->pos++;
    json_value *member = &v->items[v->count];
    memset(member, 0, sizeof *member);
    if (parse_value(p, member, depth + 1)) {
      free_contents(member);
      free(key);
      return -1;
    }
    v->count++;
    skip_whitespace(p);
    if (peek(p) == '}') {
      p->pos++;
      return 0;
    }
    if (peek(p) != ',') return unexpected(p, "',' or '}' in an object");
    p->pos++;
  }
}

static int parse_literal(parser *p, json_value *v, const char *word, json_type type) {
  size_t length = strlen(word);
  if (p->length - p->pos < length || memcmp(p->text + p->pos, word, length))
    return unexpected(p, "a value");
  p->pos += length;
  v->type = type;
  return 0;
}

static int parse_value(parser *p, json_value *v, int depth) {
  if (depth > JSON_MAX_DEPTH)
    return fail_at(p, p->pos, "nested deeper than %d levels", JSON_MAX_DEPTH);
  skip_whitespace(p);
  v->line = p->line;
  v->column = column_at(p, p->pos);
  switch (peek(p)) {
  case '{':
    return parse_object(p, v, depth);
  case '[':
    return parse_array(p, v, depth);
  case '"':
    v->type = JSON_STRING;
    return parse_string(p, &v->string);
  case 't':
    return parse_literal(p, v, "true", JSON_TRUE);
  case 'f':
    return parse_literal(p, v, "false", JSON_FALSE);
  case 'n':
    return parse_literal(p, v, "null", JSON_NULL);
  default:
    if (peek(p) == '-' || is_digit(peek(p))) return parse_number(p, v);
    return unexpected(p, "a value");
  }
}

json_value *json_parse_text(const char *text, size_t length, const char *name, char *error,
                            size_t error_size) {
  parser p = {text, name, length, 0, 1, 0, error, error_size};
  json_value *root = fp_calloc(1, sizeof *root);
  int status = parse_value(&p, root, 0);
  if (status == 0) {
    skip_whitespace(&p);
    if (p.pos < p.length) status = unexpected(&p, "the end of the file after the value");
  }
  if (status) {
    json_free(root);
    return NULL;
  }
  return root;
}

json_value *json_parse_file(const char *path, char *error, size_t error_size) {
  FILE *file = fopen(path, "rb");
  if (!file) {
    snprintf(error, error_size, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  size_t length = 0, capacity = 1 << 16;
  char *text = fp_malloc(capacity);
  for (size_t got; (got = fread(text + length, 1, capacity - length, file)) > 0;) {
    length += got;
    if (length == capacity) {
      capacity *= 2;
      text = realloc(text, capacity);
      FP_CHECK(text, "%s: out of memory", path);
    }
  }
  int read_failed = ferror(file);
  fclose(file);
  if (read_failed) {
    snprintf(error, error_size, "%s: read error", path);
    free(text);
    return NULL;
  }
  json_value *root = json_parse_text(text, length, path, error, error_size);
  free(text);
  return root;
}

void json_free(json_value *root) {
  if (!root) return;
  free_contents(root);
  free(root);
}

const json_value *json_member(const json_value *object, const char *key) {
  if (!object || object->type != JSON_OBJECT) return NULL;
  for (int k = 0; k < object->count; k++)
    if (!strcmp(object->keys[k], key)) return &object->items[k];
  return NULL;
}

int json_integer(const json_value *v, long long min, long long max, long long *out) {
  if (!v || v->type != JSON_NUMBER || v->number != floor(v->number) || v->number < (double)min ||
      v->number > (double)max)
    return 0;
  *out = (long long)v->number;
  return 1;
}

const char *json_type_name(json_type type) {
  static const char *names[] = {"null",     "false",    "true",     "a number",
                                "a string", "an array", "an object"};
  return names[type];
}
