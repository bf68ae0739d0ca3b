/* Strings packed in one text, each NUL-terminated, in the order they were added. String i
 * starts at block_starts[i / STRING_TABLE_BLOCK] + offsets[i]: 4 bytes per string and 8 per
 * block of STRING_TABLE_BLOCK strings, instead of an 8-byte offset or pointer per string (a
 * catalog lists tens of millions of paths and ids: results/catalog_scale.md). */
#ifndef FP_STRING_TABLE_H
#define FP_STRING_TABLE_H

#include <stddef.h>
#include <stdint.h>

#define STRING_TABLE_BLOCK 65536

typedef struct string_table {
  int64_t count;
  char *text;
  size_t text_bytes;
  uint32_t *offsets;
  int64_t *block_starts;
  size_t text_capacity;
  int64_t capacity;
} string_table;

/* Appends the first `length` bytes of s (which must hold no NUL) and a NUL. */
void string_table_add(string_table *t, const char *s, size_t length);
const char *string_table_get(const string_table *t, int64_t i);
/* Keeps the first count strings. */
void string_table_truncate(string_table *t, int64_t count);
void string_table_free(string_table *t);

/* The arrays of a table, as byte ranges (for sending it without a copy); string_table_receive
 * allocates a table of count strings and text_bytes of text whose ranges are then filled. */
enum { STRING_TABLE_PARTS = 3 };
void string_table_parts(const string_table *t, void *data[STRING_TABLE_PARTS],
                        size_t bytes[STRING_TABLE_PARTS]);
void string_table_receive(string_table *t, int64_t count, size_t text_bytes);
/* After the ranges of a received table were filled: FP_FATAL unless every string lies within
 * the text and ends with its NUL. `what` names the table in the message. */
void string_table_check(const string_table *t, const char *what);

#endif
