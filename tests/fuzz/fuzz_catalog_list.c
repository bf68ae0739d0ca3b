/* io/catalog/catalog_source.c's list file reader (catalog_open on a file of JPEG paths). Inputs
 * holding the HDF5 signature are skipped: catalog_open would hand them to libhdf5 as an
 * HDF5 catalog, which is HDF5's parser, not ours. The images are never opened. */
#include <stdlib.h>
#include <string.h>

#include "catalog_source.h"
#include "harness_common.h"

typedef struct list_case {
  const char *path;
  catalog *catalog;
} list_case;

static void open_catalog(void *context) {
  list_case *c = context;
  c->catalog = catalog_open(c->path, 0);
}

static int compare_ids(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void check_catalog(const catalog *c) {
  int64_t count = catalog_count(c);
  fuzz_require(count > 0 && catalog_kind_of(c) == CATALOG_LIST, "a non-empty list catalog");
  const char **ids = malloc((size_t)count * sizeof *ids);
  for (int64_t i = 0; i < count; i++) {
    ids[i] = catalog_id(c, i);
    fuzz_require(ids[i][0] && strlen(ids[i]) < CATALOG_ID_LENGTH, "id length");
  }
  qsort(ids, (size_t)count, sizeof *ids, compare_ids);
  for (int64_t i = 1; i < count; i++) fuzz_require(strcmp(ids[i - 1], ids[i]), "ids unique");
  free(ids);
  /* a transfer to another rank, done in memory */
  catalog_transfer out = catalog_transfer_send(c), in = catalog_transfer_receive();
  memcpy(in.data[0], out.data[0], out.bytes[0]);
  catalog_transfer_allocate(&in);
  fuzz_require(in.count == out.count, "a transfer has the same parts on both sides");
  for (int part = 1; part < in.count; part++) {
    fuzz_require(in.bytes[part] == out.bytes[part], "a part has the same size on both sides");
    memcpy(in.data[part], out.data[part], out.bytes[part]);
  }
  fuzz_require(catalog_transfer_finish(&out) == NULL, "the sender receives nothing");
  catalog *copy = catalog_transfer_finish(&in);
  fuzz_require(catalog_count(copy) == count &&
                   catalog_listing_hash(copy) == catalog_listing_hash(c),
               "a transfer keeps the listing");
  catalog_close(copy);
}

static int holds_hdf5_signature(const uint8_t *data, size_t size) {
  static const char signature[8] = "\x89HDF\r\n\x1a\n";
  for (size_t i = 0; i + sizeof signature <= size; i++)
    if (!memcmp(data + i, signature, sizeof signature)) return 1;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (holds_hdf5_signature(data, size)) return 0;
  list_case c = {fuzz_write_file("catalog.txt", data, size), NULL};
  if (fuzz_guarded(open_catalog, &c)) return 0;
  check_catalog(c.catalog);
  catalog_close(c.catalog);
  return 0;
}
