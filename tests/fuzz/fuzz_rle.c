/* io/ingest/rle.c: the first two bytes give the image size (1..64 x 1..64), the rest is the
 * EncodedPixels text. Painted pixels must be exactly the runs' area. */
#include <stdlib.h>
#include <string.h>

#include "harness_common.h"
#include "rle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  int height = data[0] % 64 + 1, width = data[1] % 64 + 1;
  char *text = malloc(size - 1);
  memcpy(text, data + 2, size - 2);
  text[size - 2] = '\0';
  rle_run *runs;
  int64_t count, area;
  char error[1024];
  if (rle_parse(text, (int64_t)height * width, &runs, &count, &area, error, sizeof error) == 0) {
    uint8_t mask[64 * 64] = {0};
    rle_paint(runs, count, height, width, 1, mask);
    int64_t painted = 0;
    for (int p = 0; p < height * width; p++) painted += mask[p];
    fuzz_require(painted == area && area <= (int64_t)height * width, "painted pixels = area");
    free(runs);
  } else {
    fuzz_require(error[0] != '\0', "an error has a message");
  }
  free(text);
  return 0;
}
