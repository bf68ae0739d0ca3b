/* io/ingest/ingest_imaterialist.c with io/ingest/csv.c and io/ingest/rle.c: the input is train.csv,
 * read with a fixed label_descriptions.json and a label map using every kind of target; or, when it
 * holds a line "--csv--", label_descriptions.json, that line, then train.csv (with an identity map,
 * as the fuzzed categories can be any). The only photo is train/a.jpg, PHOTO_HEIGHT x PHOTO_WIDTH.
 * Every image listed is processed. */
#include <stdlib.h>

#include "harness_common.h"
#include "harness_photo.h"
#include "ingest_source.h"

#define PHOTO_HEIGHT 6
#define PHOTO_WIDTH 5
#define MAX_IMAGES 8

static const char categories[] =
    "{\"categories\": [{\"id\": 0, \"name\": \"shirt\"}, {\"id\": 1, \"name\": \"top\"},\n"
    " {\"id\": 2, \"name\": \"sweater\"}, {\"id\": 3, \"name\": \"pants\"},\n"
    " {\"id\": 4, \"name\": \"shoe\"}, {\"id\": 5, \"name\": \"glasses\"},\n"
    " {\"id\": 6, \"name\": \"skirt\"}],\n"
    " \"attributes\": [{\"id\": 0}, {\"id\": 1}, {\"id\": 2}, {\"id\": 115}, {\"id\": 136}]}\n";
/* source ids: 0 background, c + 1 category c */
static const char every_target_map[] =
    "0 background\n1 top\n2 top\n3 ignore\n4 drop\n5 !exclude\n6 bottom\n7 bottom\n";

static char root[4096], every_target_path[4096], identity_path[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  snprintf(root, sizeof root, "%s/imaterialist", fuzz_tmp_dir());
  fuzz_write_photo("imaterialist/train/a.jpg", PHOTO_HEIGHT, PHOTO_WIDTH);
  snprintf(every_target_path, sizeof every_target_path, "%s",
           fuzz_write_file("maps/every_target.map", every_target_map, sizeof every_target_map - 1));
  snprintf(identity_path, sizeof identity_path, "%s",
           fuzz_write_file("maps/identity.map", "identity\n", 9));
  return 0;
}

typedef struct imaterialist_case {
  ingest_source source;
  const char *labels;
  int64_t index;
  ingest_buffer buffer;
} imaterialist_case;

static void open_source(void *context) {
  imaterialist_case *c = context;
  ingest_imaterialist.open(&c->source, c->labels);
}

static void process(void *context) {
  imaterialist_case *c = context;
  ingest_buffer_reset(&c->buffer);
  ingest_imaterialist.process(&c->source, 0, c->index, &c->buffer);
}

static void process_all(imaterialist_case *c) {
  const ingest_set *set = &c->source.sets[0];
  ingest_buffer_init(&c->buffer, 8, 8, c->source.map.num_classes);
  for (c->index = 0; c->index < set->count && c->index < MAX_IMAGES; c->index++) {
    fuzz_require(!fuzz_guarded(process, c), "process does not stop the program");
    const ingest_header *h = c->buffer.header;
    fuzz_require(h->status != INGEST_BAD || h->reason[0], "a bad item says why");
    fuzz_require(h->status != INGEST_OK ||
                     (h->source_height == PHOTO_HEIGHT && h->source_width == PHOTO_WIDTH),
                 "an item is ingested only with its photo's size");
    fuzz_require(h->status != INGEST_OK || h->instance_count >= 1,
                 "an ingested item keeps its rows as instances");
    for (int i = 0; h->status == INGEST_OK && i < h->instance_count; i++)
      fuzz_require(c->buffer.instances[i].category_id >= 0, "an instance has a category");
  }
  ingest_buffer_free(&c->buffer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t json_size, csv_size;
  const uint8_t *csv;
  imaterialist_case c = {.source = {.type = &ingest_imaterialist, .root = root}};
  if (fuzz_split(data, size, "--csv--", &json_size, &csv, &csv_size)) {
    fuzz_write_file("imaterialist/label_descriptions.json", data, json_size);
    c.labels = identity_path;
  } else {
    fuzz_write_file("imaterialist/label_descriptions.json", categories, sizeof categories - 1);
    csv = data;
    csv_size = size;
    c.labels = every_target_path;
  }
  fuzz_write_file("imaterialist/train.csv", csv, csv_size);
  if (fuzz_guarded(open_source, &c)) return 0;
  process_all(&c);
  ingest_imaterialist.close(&c.source);
  free(c.source.sets[0].ids);
  labelmap_free(&c.source.map);
  return 0;
}
