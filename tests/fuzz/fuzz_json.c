/* io/ingest/json.c from memory (json_parse_text), then a walk of the tree: every member must be
 * found by its key, and json_integer must agree with the number. */
#include <math.h>

#include "harness_common.h"
#include "json.h"

static void walk(const json_value *v, int depth) {
  fuzz_require(depth < 10000 && v->line >= 1 && v->column >= 1, "depth and position");
  fuzz_require(json_type_name(v->type) != NULL, "type name");
  long long integer;
  if (v->type == JSON_NUMBER && json_integer(v, -1000000, 1000000, &integer))
    fuzz_require((double)integer == v->number, "json_integer gives the number");
  if (v->type == JSON_STRING) fuzz_require(v->string != NULL, "string text");
  for (int i = 0; (v->type == JSON_ARRAY || v->type == JSON_OBJECT) && i < v->count; i++) {
    if (v->type == JSON_OBJECT)
      fuzz_require(json_member(v, v->keys[i]) == &v->items[i], "member found by its key");
    walk(&v->items[i], depth + 1);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char error[1024];
  json_value *root = json_parse_text((const char *)data, size, "input.json", error, sizeof error);
  if (root) {
    walk(root, 0);
    json_free(root);
  } else {
    fuzz_require(error[0] != '\0', "an error has a message");
  }
  return 0;
}
