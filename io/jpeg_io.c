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

int jpeg_read_rgb(const char *path, uint8_t **pixels, int *height, int *width, char *error,
                  size_t error_size) {
  *pixels = NULL;
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
    snprintf(error, error_size, "%s: corrupt or truncated JPEG: %s", path, failure.message);
    jpeg_destroy_decompress(&cinfo);
    fclose(file);
    free(decoded);
    return -1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, file);
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = JCS_RGB;
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
  *height = (int)cinfo.output_height;
  *width = (int)cinfo.output_width;
  jpeg_destroy_decompress(&cinfo);
  fclose(file);
  *pixels = decoded;
  return 0;
}
