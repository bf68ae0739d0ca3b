/* Writers for test fixtures: JPEG files with libjpeg, .mat files with libmatio. */
#ifndef FP_TEST_FIXTURES_H
#define FP_TEST_FIXTURES_H

#include <stdint.h>

/* channels 3 (RGB) or 1 (grayscale); rows top to bottom. */
void fixture_write_jpeg(const char *path, const uint8_t *pixels, int height, int width,
                        int channels, int quality);
/* A 2-D matrix given row-major (data[r*cols+c]), stored column-major as MATLAB
 * does, of class double (as CCP's files are) or uint8. */
void fixture_write_mat_matrix(const char *path, const char *name, const uint8_t *data, int rows,
                              int cols, int as_double);
/* A 1 x count cell array of strings. */
void fixture_write_mat_strings(const char *path, const char *name, const char *const *strings,
                               int count);
/* The test's work directory, and a path in it (from a ring of 8 buffers, so a few can be used at
 * once). */
void fixture_set_work_dir(const char *dir);
const char *fixture_in_work(const char *name);
/* Copies the first `bytes` bytes of src to dst (a truncated file). */
void fixture_truncate_copy(const char *src, const char *dst, long bytes);

#endif
