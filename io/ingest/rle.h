/* Run-length encoded masks as the Kaggle iMaterialist files write them:
 * "start length start length ...", 1-based starts counted over the image in
 * column-major order (top to bottom, then left to right). */
#ifndef FP_RLE_H
#define FP_RLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct rle_run {
  int64_t start, length; /* 0-based column-major start */
} rle_run;

/* Parses `text` for an image of `pixels` pixels. Runs must be in increasing
 * order without overlap, every start >= 1 and length >= 1, and no run may end
 * past the last pixel. Returns 0 with *runs (malloc'd; the caller frees),
 * *count and *area (pixels covered), or -1 with a message in `error`. */
int rle_parse(const char *text, int64_t pixels, rle_run **runs, int64_t *count, int64_t *area,
              char *error, size_t error_size);

/* Sets the pixels the runs cover to `value` in the row-major h x w `mask`. */
void rle_paint(const rle_run *runs, int64_t count, int height, int width, uint8_t value,
               uint8_t *mask);

#endif
