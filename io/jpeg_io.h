/* JPEG decoding with libjpeg-turbo. */
#ifndef FP_JPEG_IO_H
#define FP_JPEG_IO_H

#include <stddef.h>
#include <stdint.h>

/* Decodes `path` to interleaved RGB (grayscale is expanded to RGB). Returns 0
 * and sets *pixels (malloc'd, height*width*3 bytes, the caller frees) or, on
 * any libjpeg error *or warning* (a truncated file, corrupt data), returns -1
 * with a message naming the file in `error` and leaves *pixels NULL. */
int jpeg_read_rgb(const char *path, uint8_t **pixels, int *height, int *width, char *error,
                  size_t error_size);

#endif
