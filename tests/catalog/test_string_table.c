/* io/catalog/string_table: strings across several blocks, truncation, and a table sent as its
 * byte ranges and received into another. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "string_table.h"

#define COUNT (2 * STRING_TABLE_BLOCK + 1234)

static void expected(int64_t i, char *text, size_t size) {
  snprintf(text, size, "%lld/%.*s", (long long)i, (int)(i % 37),
           "abcdefghijklmnopqrstuvwxyz0123456789");
}

static void check_strings(const string_table *t, int64_t count) {
  FP_CHECK(t->count == count, "count %lld, expected %lld", (long long)t->count, (long long)count);
  for (int64_t i = 0; i < count; i++) {
    char want[64];
    expected(i, want, sizeof want);
    FP_CHECK(!strcmp(string_table_get(t, i), want), "string %lld is '%s', expected '%s'",
             (long long)i, string_table_get(t, i), want);
  }
}

int main(void) {
  string_table t = {0};
  for (int64_t i = 0; i < COUNT; i++) {
    char text[64];
    expected(i, text, sizeof text);
    string_table_add(&t, text, strlen(text));
  }
  check_strings(&t, COUNT);
  string_table_check(&t, "added");

  string_table copy;
  void *data[STRING_TABLE_PARTS], *copy_data[STRING_TABLE_PARTS];
  size_t bytes[STRING_TABLE_PARTS], copy_bytes[STRING_TABLE_PARTS];
  string_table_parts(&t, data, bytes);
  string_table_receive(&copy, t.count, t.text_bytes);
  string_table_parts(&copy, copy_data, copy_bytes);
  for (int part = 0; part < STRING_TABLE_PARTS; part++) {
    FP_CHECK(bytes[part] == copy_bytes[part], "part %d: %zu bytes sent, %zu received", part,
             bytes[part], copy_bytes[part]);
    memcpy(copy_data[part], data[part], bytes[part]);
  }
  string_table_check(&copy, "received");
  check_strings(&copy, COUNT);
  string_table_free(&copy);

  string_table_truncate(&t, STRING_TABLE_BLOCK + 1);
  check_strings(&t, STRING_TABLE_BLOCK + 1);
  string_table_check(&t, "truncated");
  string_table_add(&t, "last", 4);
  FP_CHECK(!strcmp(string_table_get(&t, STRING_TABLE_BLOCK + 1), "last"), "added after truncation");
  string_table_free(&t);
  printf("string_table: %d strings over %d blocks\n", COUNT, COUNT / STRING_TABLE_BLOCK + 1);
  return 0;
}
