/* The letterboxed images parse_catalog computes from a catalog (catalog_load_image), for
 * h5py_fields.py to recompute the colour statistics of a JPEG catalog's run from.
 * Usage: catalog_images SOURCE HEIGHT WIDTH OUT.bin   (writes N x HEIGHT x WIDTH x 3 bytes) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog_source.h"
#include "check.h"

int main(int argc, char **argv) {
  FP_CHECK(argc == 5, "usage: catalog_images SOURCE HEIGHT WIDTH OUT.bin");
  int height = atoi(argv[2]), width = atoi(argv[3]);
  FP_CHECK(height > 0 && width > 0, "bad size %s x %s", argv[2], argv[3]);
  catalog *c = catalog_open(argv[1], 0);
  size_t bytes = (size_t)height * width * 3;
  uint8_t *image = fp_malloc(bytes);
  FILE *out = fopen(argv[4], "wb");
  FP_CHECK(out, "%s: %s", argv[4], strerror(errno));
  for (int64_t i = 0; i < catalog_count(c); i++) {
    catalog_geometry geometry;
    char reason[CATALOG_REASON_LENGTH];
    FP_CHECK(!catalog_load_image(c, i, height, width, image, &geometry, reason, sizeof reason),
             "%s", reason);
    FP_CHECK(fwrite(image, 1, bytes, out) == bytes, "%s: write failed", argv[4]);
  }
  FP_CHECK(fclose(out) == 0, "%s: %s", argv[4], strerror(errno));
  printf("%lld images\n", (long long)catalog_count(c));
  free(image);
  catalog_close(c);
  return 0;
}
