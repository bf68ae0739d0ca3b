/* Writes a JPEG (quality 95, no chroma subsampling) from raw RGB on stdin, so
 * that the Python tests can make photos without an imaging library.
 * Usage: write_jpeg OUT.jpg HEIGHT WIDTH < pixels (HEIGHT*WIDTH*3 bytes, rows top to bottom) */
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "fixtures.h"

int main(int argc, char **argv) {
  FP_CHECK(argc == 4, "usage: write_jpeg OUT.jpg HEIGHT WIDTH < rgb");
  int height = atoi(argv[2]), width = atoi(argv[3]);
  FP_CHECK(height > 0 && width > 0 && height <= 16384 && width <= 16384, "bad size %s x %s",
           argv[2], argv[3]);
  size_t bytes = (size_t)height * width * 3;
  uint8_t *pixels = fp_malloc(bytes);
  FP_CHECK(fread(pixels, 1, bytes, stdin) == bytes, "stdin: fewer than %zu bytes", bytes);
  fixture_write_jpeg(argv[1], pixels, height, width, 3, 95);
  free(pixels);
  return 0;
}
