/* io/ingest/ingest_deepfashion2.c with io/ingest/json.c and io/ingest/polygon.c: the input is the
 * annotation annos/a.json of the photo image/a.jpg (PHOTO_HEIGHT x PHOTO_WIDTH), read with a label
 * map using every kind of target. */
#include <stdlib.h>

#include "harness_common.h"
#include "harness_photo.h"
#include "ingest_source.h"

#define PHOTO_HEIGHT 9
#define PHOTO_WIDTH 7

static const char every_target_map[] =
    "0 background\n1 top\n2 top\n3 outwear\n4 outwear\n5 top\n6 top\n7 ignore\n"
    "8 bottom\n9 drop\n10 dress\n11 dress\n12 !exclude\n13 dress\n";

static char root[4096], labels[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  snprintf(root, sizeof root, "%s/deepfashion2", fuzz_tmp_dir());
  fuzz_write_photo("deepfashion2/image/a.jpg", PHOTO_HEIGHT, PHOTO_WIDTH);
  snprintf(labels, sizeof labels, "%s",
           fuzz_write_file("maps/every_target.map", every_target_map, sizeof every_target_map - 1));
  return 0;
}

typedef struct deepfashion2_case {
  ingest_source source;
  ingest_buffer buffer;
} deepfashion2_case;

static void open_source(void *context) {
  deepfashion2_case *c = context;
  ingest_deepfashion2.open(&c->source, labels);
}

static void process(void *context) {
  deepfashion2_case *c = context;
  ingest_deepfashion2.process(&c->source, 0, 0, &c->buffer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_write_file("deepfashion2/annos/a.json", data, size);
  deepfashion2_case c = {.source = {.type = &ingest_deepfashion2, .root = root}};
  fuzz_require(!fuzz_guarded(open_source, &c), "the fixed layout opens");
  ingest_buffer_init(&c.buffer, 8, 8, c.source.map.num_classes);
  fuzz_require(!fuzz_guarded(process, &c), "process does not stop the program");
  const ingest_header *h = c.buffer.header;
  fuzz_require(h->status != INGEST_BAD || h->reason[0], "a bad item says why");
  for (int g = 0; h->status == INGEST_OK && g < h->garment_count; g++)
    fuzz_require(c.buffer.garments[g].category_id >= 1 && c.buffer.garments[g].category_id <= 13,
                 "garment category");
  ingest_buffer_free(&c.buffer);
  free(c.source.sets[0].ids);
  labelmap_free(&c.source.map);
  return 0;
}
