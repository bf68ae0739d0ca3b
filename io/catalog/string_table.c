#include "string_table.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

static int64_t block_count(int64_t count) {
  return (count + STRING_TABLE_BLOCK - 1) / STRING_TABLE_BLOCK;
}

static void *resize(void *p, size_t bytes) {
  p = realloc(p, bytes ? bytes : 1);
  FP_CHECK(p, "out of memory (%zu bytes for a string table)", bytes);
  return p;
}

void string_table_add(string_table *t, const char *s, size_t length) {
  if (t->text_bytes + length + 1 > t->text_capacity) {
    while (t->text_bytes + length + 1 > t->text_capacity)
      t->text_capacity = t->text_capacity ? 2 * t->text_capacity : 1 << 16;
    t->text = resize(t->text, t->text_capacity);
  }
  if (t->count == t->capacity) {
    t->capacity = t->capacity ? 2 * t->capacity : 1024;
    t->offsets = resize(t->offsets, (size_t)t->capacity * sizeof *t->offsets);
    t->block_starts =
        resize(t->block_starts, (size_t)block_count(t->capacity) * sizeof *t->block_starts);
  }
  int64_t block = t->count / STRING_TABLE_BLOCK;
  if (t->count % STRING_TABLE_BLOCK == 0) t->block_starts[block] = (int64_t)t->text_bytes;
  size_t offset = t->text_bytes - (size_t)t->block_starts[block];
  FP_CHECK(offset <= UINT32_MAX, "string table: %d strings hold more than 4 GiB",
           STRING_TABLE_BLOCK);
  t->offsets[t->count++] = (uint32_t)offset;
  memcpy(t->text + t->text_bytes, s, length);
  t->text[t->text_bytes + length] = '\0';
  t->text_bytes += length + 1;
}

const char *string_table_get(const string_table *t, int64_t i) {
  return t->text + t->block_starts[i / STRING_TABLE_BLOCK] + t->offsets[i];
}

void string_table_truncate(string_table *t, int64_t count) {
  if (count >= t->count) return;
  t->text_bytes = count > 0 ? (size_t)(string_table_get(t, count) - t->text) : 0;
  t->count = count;
}

void string_table_free(string_table *t) {
  free(t->text);
  free(t->offsets);
  free(t->block_starts);
  *t = (string_table){0};
}

void string_table_parts(const string_table *t, void *data[STRING_TABLE_PARTS],
                        size_t bytes[STRING_TABLE_PARTS]) {
  data[0] = t->text;
  bytes[0] = t->text_bytes;
  data[1] = t->offsets;
  bytes[1] = (size_t)t->count * sizeof *t->offsets;
  data[2] = t->block_starts;
  bytes[2] = (size_t)block_count(t->count) * sizeof *t->block_starts;
}

void string_table_receive(string_table *t, int64_t count, size_t text_bytes) {
  FP_CHECK(count >= 0, "string table of %lld strings", (long long)count);
  *t = (string_table){
      .count = count, .text_bytes = text_bytes, .text_capacity = text_bytes, .capacity = count};
  t->text = resize(NULL, text_bytes);
  t->offsets = resize(NULL, (size_t)count * sizeof *t->offsets);
  t->block_starts = resize(NULL, (size_t)block_count(count) * sizeof *t->block_starts);
}

void string_table_check(const string_table *t, const char *what) {
  FP_CHECK(t->count == 0 || (t->text_bytes > 0 && t->text[t->text_bytes - 1] == '\0'),
           "%s: the text does not end with a NUL", what);
  uint64_t end = 0;
  for (int64_t i = 0; i < t->count; i++) {
    uint64_t start = (uint64_t)t->block_starts[i / STRING_TABLE_BLOCK] + t->offsets[i];
    FP_CHECK(start == end && start < t->text_bytes,
             "%s: string %lld does not start where the one before ends", what, (long long)i);
    end = start + strlen(t->text + start) + 1;
  }
  FP_CHECK(end == t->text_bytes, "%s: %zu bytes of text after the last string", what,
           (size_t)(t->text_bytes - end));
}
