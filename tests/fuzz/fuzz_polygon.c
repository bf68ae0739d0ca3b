/* io/ingest/polygon.c: bytes 0-2 give height, width (1..64) and the fill value, the rest the
 * vertices as raw doubles (NaN and infinities included). The count returned must be the
 * pixels that changed. */
#include <stdlib.h>
#include <string.h>

#include "harness_common.h"
#include "polygon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  int height = data[0] % 64 + 1, width = data[1] % 64 + 1;
  uint8_t value = data[2];
  size_t doubles = (size - 3) / sizeof(double);
  double *xy = malloc((doubles ? doubles : 1) * sizeof *xy);
  memcpy(xy, data + 3, doubles * sizeof *xy);
  uint8_t mask[64 * 64], before[64 * 64];
  memset(mask, (uint8_t)(value + 1), sizeof mask);
  memcpy(before, mask, sizeof mask);
  int64_t set = polygon_fill(xy, (int)(doubles / 2), height, width, value, mask);
  int64_t changed = 0;
  for (size_t p = 0; p < sizeof mask; p++) changed += mask[p] != before[p];
  fuzz_require(set == changed, "returned count = pixels changed");
  for (size_t p = (size_t)height * width; p < sizeof mask; p++)
    fuzz_require(mask[p] == before[p], "nothing written outside the image");
  free(xy);
  return 0;
}
