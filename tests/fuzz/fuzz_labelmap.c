/* io/ingest/labelmap.c: the input is a label map file for a source with CCP-like class names;
 * a loaded map then maps every source id. */
#include <string.h>

#include "harness_common.h"
#include "labelmap.h"

static char *const source_names[] = {"null",     "accessories", "bag",     "belt",   "blazer",
                                     "blouse",   "bodysuit",    "boots",   "bra",    "bracelet",
                                     "cape",     "cardigan",    "clogs",   "coat",   "dress",
                                     "earrings", "flats",       "glasses", "gloves", "hair"};
enum { SOURCE_COUNT = sizeof source_names / sizeof source_names[0] };

typedef struct labelmap_case {
  const char *path;
  labelmap map;
} labelmap_case;

static void load(void *context) {
  labelmap_case *c = context;
  labelmap_load(&c->map, c->path, source_names, SOURCE_COUNT);
}

static void check_apply(const labelmap *map) {
  uint8_t labels[256];
  for (int i = 0; i < 256; i++) labels[i] = (uint8_t)i;
  int offending = -1;
  labelmap_result result = labelmap_apply(map, labels, SOURCE_COUNT, &offending);
  if (result != LABELMAP_MAPPED) {
    fuzz_require(offending >= 0 && offending < SOURCE_COUNT, "offending id is a source id");
    return;
  }
  for (int s = 0; s < SOURCE_COUNT; s++)
    fuzz_require(labels[s] == LABELMAP_IGNORE || labels[s] < map->num_classes,
                 "mapped to a class or ignore");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  labelmap_case c;
  c.path = fuzz_write_file("maps/input.map", data, size);
  if (fuzz_guarded(load, &c)) return 0;
  fuzz_require(!strcmp(c.map.name, "input"), "map name");
  fuzz_require(c.map.num_classes >= 1 && c.map.num_classes <= LABELMAP_IGNORE, "class count");
  check_apply(&c.map);
  labelmap_free(&c.map);
  return 0;
}
