#include "harness_photo.h"

#include <jpeglib.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness_common.h"

void fuzz_write_photo(const char *name, int height, int width) {
  const char *path = fuzz_write_file(name, "", 0);
  FILE *file = fopen(path, "wb");
  fuzz_require(file != NULL, "photo file");
  struct jpeg_compress_struct cinfo;
  struct jpeg_error_mgr errors;
  cinfo.err = jpeg_std_error(&errors);
  jpeg_create_compress(&cinfo);
  jpeg_stdio_dest(&cinfo, file);
  cinfo.image_width = (JDIMENSION)width;
  cinfo.image_height = (JDIMENSION)height;
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  unsigned char *row = malloc((size_t)width * 3);
  while (cinfo.next_scanline < cinfo.image_height) {
    for (int x = 0; x < width; x++) {
      row[3 * x] = (unsigned char)(40 * x);
      row[3 * x + 1] = (unsigned char)(40 * cinfo.next_scanline);
      row[3 * x + 2] = 128;
    }
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  free(row);
  fuzz_require(fclose(file) == 0, "photo written");
}
