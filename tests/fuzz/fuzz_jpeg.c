/* io/image/jpeg_io.c through libjpeg-turbo: the input is a JPEG file, decoded at full size and
 * at the smallest DCT scale covering a minimum taken from the input's length. */
#include <stdlib.h>

#include "harness_common.h"
#include "jpeg_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write_file("input.jpg", data, size);
  char error[1024];
  uint8_t *pixels;
  int height, width;
  if (jpeg_read_rgb(path, &pixels, &height, &width, error, sizeof error) == 0) {
    fuzz_require(height > 0 && width > 0, "decoded size");
    free(pixels);
  } else {
    fuzz_require(pixels == NULL && error[0], "a failure allocates nothing and says why");
  }
  jpeg_image image;
  int min_height = (int)(size % 61), min_width = (int)(size % 53);
  if (jpeg_read_rgb_scaled(path, min_height, min_width, &image, error, sizeof error) == 0) {
    int n = image.scale_num;
    fuzz_require(n == 1 || n == 2 || n == 4 || n == 8, "scale");
    fuzz_require(image.height == (image.source_height * n + 7) / 8 &&
                     image.width == (image.source_width * n + 7) / 8,
                 "scaled size = ceil(source * N / 8)");
    fuzz_require(n == 8 || (image.height >= min_height && image.width >= min_width),
                 "a reduced scale covers the minimum");
    free(image.pixels);
  } else {
    fuzz_require(image.pixels == NULL && error[0], "a failure allocates nothing and says why");
  }
  return 0;
}
