/* io/image/png_io.c writes previews (the project reads no PNG): bytes 0-2 give height, width
 * (1..64) and channels (byte % 4: 0 and 2 must be refused with FP_FATAL), the rest the
 * pixels, repeated as needed. What libpng reads back must be those pixels. */
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "harness_common.h"
#include "png_io.h"

typedef struct png_case {
  const char *path;
  const uint8_t *pixels;
  int height, width, channels;
} png_case;

static void write_png(void *context) {
  const png_case *c = context;
  png_write_u8(c->path, c->pixels, c->height, c->width, c->channels);
}

static void check_read_back(const png_case *c, size_t bytes) {
  png_image image;
  memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  fuzz_require(png_image_begin_read_from_file(&image, c->path), "written PNG opens");
  fuzz_require(image.height == (png_uint_32)c->height && image.width == (png_uint_32)c->width,
               "written size");
  image.format = c->channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  uint8_t *read = malloc(bytes);
  fuzz_require(png_image_finish_read(&image, NULL, read, 0, NULL), "written PNG decodes");
  fuzz_require(!memcmp(read, c->pixels, bytes), "pixels read back");
  free(read);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  png_case c = {NULL, NULL, data[0] % 64 + 1, data[1] % 64 + 1, data[2] % 4};
  size_t bytes = (size_t)c.height * c.width * (c.channels ? c.channels : 1);
  uint8_t *pixels = malloc(bytes);
  for (size_t i = 0; i < bytes; i++) pixels[i] = size > 3 ? data[3 + i % (size - 3)] : 0;
  c.pixels = pixels;
  char name[64];
  snprintf(name, sizeof name, "out%d.png", c.channels);
  c.path = fuzz_write_file(name, "", 0);
  int refused = fuzz_guarded(write_png, &c);
  fuzz_require(refused == (c.channels != 1 && c.channels != 3), "refuses only 1 or 3 channels");
  if (!refused) check_read_back(&c, bytes);
  free(pixels);
  return 0;
}
