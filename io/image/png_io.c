#include "png_io.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <png.h>

#include "check.h"

typedef struct png_failure {
  char message[256];
} png_failure;

static void record_error(png_structp png, png_const_charp message) {
  png_failure *failure = png_get_error_ptr(png);
  snprintf(failure->message, sizeof failure->message, "%s", message);
  png_longjmp(png, 1);
}

static void ignore_warning(png_structp png, png_const_charp message) {
  (void)png;
  (void)message;
}

void png_write_u8(const char *path, const uint8_t *pixels, int height, int width, int channels) {
  FP_CHECK(channels == 1 || channels == 3, "%s: PNG with %d channels (1 or 3 supported)", path,
           channels);
  FP_CHECK(height > 0 && width > 0, "%s: PNG of %dx%d pixels", path, height, width);
  FILE *file = fopen(path, "wb");
  FP_CHECK(file, "%s: cannot create: %s", path, strerror(errno));
  png_failure failure = {"unknown libpng error"};
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, &failure, record_error, ignore_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (!png || !info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    fclose(file);
    remove(path);
    FP_FATAL("%s: libpng: %s", path, png ? failure.message : "png_create_write_struct failed");
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
               channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < height; y++) png_write_row(png, pixels + (size_t)y * width * channels);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  FP_CHECK(fclose(file) == 0, "%s: write failed: %s", path, strerror(errno));
}
