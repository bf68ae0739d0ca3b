#include "jpeg_io.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

/* libjpeg's default handler calls exit(); ours jumps back with the message.
 * Warnings (premature end of data, corrupt markers) mean a damaged file, so
 * they stop the decode as well. */
typedef struct jpeg_failure {
  struct jpeg_error_mgr manager;
  jmp_buf resume;
  char message[JMSG_LENGTH_MAX];
} jpeg_failure;

static void fail_with_message(j_common_ptr cinfo) {
  jpeg_failure *failure = (jpeg_failure *)cinfo->err;
  cinfo->err->format_message(cinfo, failure->message);
  longjmp(failure->resume, 1);
}

static void emit_message(j_common_ptr cinfo, int level) {
  if (level < 0) fail_with_message(cinfo);
}

/* Decodes path into *image; with `minimum`, at the smallest scale N/8 (N = 1, 2, 4, else 8)
 * covering the minimum it gives, otherwise at libjpeg's default (full) size. */
static int decode(const char *path, jpeg_minimum_fn minimum, void *context, jpeg_image *image,
                  char *error, size_t error_size) {
  *image = (jpeg_image){0};
  FILE *file = fopen(path, "rb");
  if (!file) {
    snprintf(error, error_size, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  struct jpeg_decompress_struct cinfo;
  jpeg_failure failure;
  cinfo.err = jpeg_std_error(&failure.manager);
  failure.manager.error_exit = fail_with_message;
  failure.manager.emit_message = emit_message;
  /* volatile: assigned after setjmp and read after the longjmp. */
  uint8_t *volatile decoded = NULL;
  if (setjmp(failure.resume)) {
    snprintf(error, error_size, "%s: unreadable JPEG: %s", path, failure.message);
    jpeg_destroy_decompress(&cinfo);
    fclose(file);
    free(decoded);
    return -1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, file);
  jpeg_read_header(&cinfo, TRUE);
  if ((double)cinfo.image_width * cinfo.image_height > JPEG_MAX_SOURCE_PIXELS) {
    snprintf(failure.message, sizeof failure.message,
             "declares %ux%u pixels: more than the %d megapixels a photo may have",
             cinfo.image_width, cinfo.image_height, JPEG_MAX_SOURCE_PIXELS / 1000000);
    longjmp(failure.resume, 1);
  }
  cinfo.out_color_space = JCS_RGB;
  int scale_num = 8;
  if (minimum) {
    int min_height = 0, min_width = 0;
    minimum(context, (int)cinfo.image_height, (int)cinfo.image_width, &min_height, &min_width);
    /* libjpeg-turbo scales by N/8, N = 1..16; above 8/8 it would upscale. Below 8/8 only
     * N = 1, 2 and 4 are tried: 3/8 decodes no faster than 4/8, and 5/8..7/8 more slowly than
     * 8/8 (plain C inverse DCTs against SIMD ones; results/jpeg_dct_scaling.md). */
    for (int n = 1; n < 8; n *= 2) {
      cinfo.scale_num = (unsigned)n;
      cinfo.scale_denom = 8;
      jpeg_calc_output_dimensions(&cinfo);
      if ((long)cinfo.output_height >= min_height && (long)cinfo.output_width >= min_width) {
        scale_num = n;
        break;
      }
    }
    cinfo.scale_num = (unsigned)scale_num;
    cinfo.scale_denom = 8;
  }
  jpeg_calc_output_dimensions(&cinfo);
  /* the header alone sizes the buffer: a few hundred bytes can declare 65535 x 65535 */
  if ((double)cinfo.output_width * cinfo.output_height > JPEG_MAX_PIXELS) {
    snprintf(failure.message, sizeof failure.message,
             "declares %ux%u pixels (decoded at %ux%u): more than the %d megapixels accepted",
             cinfo.image_width, cinfo.image_height, cinfo.output_width, cinfo.output_height,
             JPEG_MAX_PIXELS / 1000000);
    longjmp(failure.resume, 1);
  }
  jpeg_start_decompress(&cinfo);
  size_t row_bytes = (size_t)cinfo.output_width * 3;
  decoded = malloc(row_bytes * cinfo.output_height);
  if (!decoded) {
    snprintf(failure.message, sizeof failure.message, "out of memory for %ux%u pixels",
             cinfo.output_width, cinfo.output_height);
    longjmp(failure.resume, 1);
  }
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = decoded + row_bytes * cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  image->height = (int)cinfo.output_height;
  image->width = (int)cinfo.output_width;
  image->source_height = (int)cinfo.image_height;
  image->source_width = (int)cinfo.image_width;
  image->scale_num = scale_num;
  jpeg_destroy_decompress(&cinfo);
  fclose(file);
  image->pixels = decoded;
  return 0;
}

int jpeg_read_rgb(const char *path, uint8_t **pixels, int *height, int *width, char *error,
                  size_t error_size) {
  jpeg_image image;
  int status = decode(path, NULL, NULL, &image, error, error_size);
  *pixels = image.pixels;
  if (status == 0) {
    *height = image.height;
    *width = image.width;
  }
  return status;
}

int jpeg_read_rgb_covering(const char *path, jpeg_minimum_fn minimum, void *context,
                           jpeg_image *image, char *error, size_t error_size) {
  return decode(path, minimum, context, image, error, error_size);
}

typedef struct fixed_minimum {
  int height, width;
} fixed_minimum;

static void give_fixed_minimum(void *context, int source_height, int source_width, int *min_height,
                               int *min_width) {
  (void)source_height;
  (void)source_width;
  const fixed_minimum *m = context;
  *min_height = m->height;
  *min_width = m->width;
}

int jpeg_read_rgb_scaled(const char *path, int min_height, int min_width, jpeg_image *image,
                         char *error, size_t error_size) {
  fixed_minimum m = {min_height, min_width};
  return decode(path, give_fixed_minimum, &m, image, error, error_size);
}
