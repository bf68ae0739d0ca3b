/* JPEG decoding with libjpeg-turbo. */
#ifndef FP_JPEG_IO_H
#define FP_JPEG_IO_H

#include <stddef.h>
#include <stdint.h>

/* Decoded pixels (after DCT scaling) a JPEG may have: its header alone sizes the buffer. */
#define JPEG_MAX_PIXELS 100000000
/* Pixels a JPEG may declare, whatever the scale it is decoded at: every block is entropy-decoded
 * even at 1/8, so a 311-byte file declaring 16395 x 51981 took 14 s (found by tests/fuzz);
 * 2.5 x a 100-megapixel medium-format camera's photos. */
#define JPEG_MAX_SOURCE_PIXELS 250000000

/* Decodes `path` to interleaved RGB (grayscale is expanded to RGB). Returns 0
 * and sets *pixels (malloc'd, height*width*3 bytes, the caller frees) or, on
 * any libjpeg error *or warning* (a truncated file, corrupt data), more than
 * JPEG_MAX_SOURCE_PIXELS declared or JPEG_MAX_PIXELS decoded pixels, returns -1 with a message
 * naming the file in `error` and leaves *pixels NULL. */
int jpeg_read_rgb(const char *path, uint8_t **pixels, int *height, int *width, char *error,
                  size_t error_size);

/* A photo decoded at a reduced DCT scale: its pixels cover the whole photo,
 * source_height x source_width pixels of the file, at scale_num/8 of that size:
 * height = ceil(source_height * scale_num / 8), same for the width, so the
 * photo spans source_height * scale_num / 8 decoded rows (the last row and
 * column may hold only a fraction of a pixel's worth of the photo; resize with
 * resize_photo_extent and that span, not with height x width). */
typedef struct jpeg_image {
  uint8_t *pixels; /* height*width*3 bytes, RGB, malloc'd: the caller frees */
  int height, width;
  int source_height, source_width;
  int scale_num; /* 1, 2, 4 or 8: decoded at scale_num/8 */
} jpeg_image;

/* Decodes `path` at the smallest of the scales 1/8, 2/8, 4/8 and 8/8 whose
 * output, as jpeg_calc_output_dimensions gives it, is at least min_height x
 * min_width; a photo smaller than the minimum is decoded at full size (8/8),
 * never upscaled. The scaling is libjpeg's reduced-size inverse DCT, so an
 * output pixel is about the mean of the 8/N x 8/N photo pixels it covers.
 * (libjpeg-turbo also offers N = 3, 5, 6 and 7, with plain C inverse DCTs where
 * 2/8, 4/8 and 8/8 have SIMD ones: measured on CCP photos, 3/8 decodes no
 * faster than 4/8 and 5/8..7/8 more slowly than 8/8, results/jpeg_dct_scaling.md.)
 * Errors as jpeg_read_rgb (image->pixels NULL on failure). */
int jpeg_read_rgb_scaled(const char *path, int min_height, int min_width, jpeg_image *image,
                         char *error, size_t error_size);

/* The minimum output size for a photo of source_height x source_width
 * pixels, asked once its header is read. */
typedef void (*jpeg_minimum_fn)(void *context, int source_height, int source_width, int *min_height,
                                int *min_width);
/* jpeg_read_rgb_scaled with the minimum depending on the photo's size (e.g.
 * the letterbox it will be resized into). */
int jpeg_read_rgb_covering(const char *path, jpeg_minimum_fn minimum, void *context,
                           jpeg_image *image, char *error, size_t error_size);

#endif
