/* The job-file (INI) parser, src/base/ini.c, with both of its schemas: train's
 * (src/cmd/config.c: load, validate, class weights) and parse_catalog's
 * (src/cmd/catalog_job.c). A train job that loads must load again, identically, from
 * the INI text train_config_to_ini makes of it (the text checkpoints store). */
#include <string.h>

#include "catalog_job.h"
#include "config.h"
#include "harness_common.h"

typedef struct job_case {
  const char *path;
  train_config train;
  catalog_job catalog;
  float weights[255];
} job_case;

static void load_train(void *context) {
  job_case *c = context;
  train_config_defaults(&c->train);
  train_config_load(&c->train, c->path, 0, NULL);
}

static void use_train(void *context) {
  job_case *c = context;
  train_config_validate(&c->train, c->path);
  train_config_class_weights(&c->train, c->train.classes ? c->train.classes : 2, c->weights);
}

static void load_catalog(void *context) {
  job_case *c = context;
  catalog_job_defaults(&c->catalog);
  catalog_job_load(&c->catalog, c->path, 0, NULL);
}

static void check_round_trip(job_case *c) {
  static char text[1 << 16];
  size_t length = train_config_to_ini(&c->train, text, sizeof text);
  train_config first = c->train;
  c->path = fuzz_write_file("resolved.ini", text, length);
  fuzz_require(!fuzz_guarded(load_train, c), "the resolved job loads");
  fuzz_require(!memcmp(&first, &c->train, sizeof first), "the resolved job loads identically");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static job_case c;
  c.path = fuzz_write_file("job.ini", data, size);
  fuzz_guarded(load_catalog, &c);
  if (fuzz_guarded(load_train, &c)) return 0;
  fuzz_guarded(use_train, &c);
  check_round_trip(&c);
  return 0;
}
