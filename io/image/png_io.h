/* PNG writing with libpng (previews). */
#ifndef FP_PNG_IO_H
#define FP_PNG_IO_H

#include <stdint.h>

/* Writes an 8-bit image, rows top to bottom, channels interleaved:
 * channels 1 = grayscale, 3 = RGB. FP_FATAL naming the file and libpng's
 * message on failure; no partial file is left behind. */
void png_write_u8(const char *path, const uint8_t *pixels, int height, int width, int channels);

#endif
