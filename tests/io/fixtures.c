#include "fixtures.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <matio.h>

#include "check.h"

void fixture_write_jpeg(const char *path, const uint8_t *pixels, int height, int width,
                        int channels, int quality) {
  FILE *file = fopen(path, "wb");
  FP_CHECK(file, "%s: %s", path, strerror(errno));
  struct jpeg_compress_struct cinfo;
  struct jpeg_error_mgr error; /* default handler: prints and exits, fine for fixtures */
  cinfo.err = jpeg_std_error(&error);
  jpeg_create_compress(&cinfo);
  jpeg_stdio_dest(&cinfo, file);
  cinfo.image_width = (JDIMENSION)width;
  cinfo.image_height = (JDIMENSION)height;
  cinfo.input_components = channels;
  cinfo.in_color_space = channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  /* 4:4:4: no chroma subsampling, so flat colour blocks keep their colour up to the edge. */
  for (int c = 0; c < cinfo.num_components; c++)
    cinfo.comp_info[c].h_samp_factor = cinfo.comp_info[c].v_samp_factor = 1;
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * width * channels);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  FP_CHECK(fclose(file) == 0, "%s: %s", path, strerror(errno));
}

static mat_t *create_mat(const char *path) {
  mat_t *mat = Mat_CreateVer(path, NULL, MAT_FT_MAT5);
  FP_CHECK(mat, "%s: Mat_CreateVer failed", path);
  return mat;
}

void fixture_write_mat_matrix(const char *path, const char *name, const uint8_t *data, int rows,
                              int cols, int as_double) {
  size_t dims[2] = {(size_t)rows, (size_t)cols}, n = (size_t)rows * cols;
  double *doubles = fp_malloc(n * sizeof *doubles);
  uint8_t *bytes = fp_malloc(n);
  for (int c = 0; c < cols; c++)
    for (int r = 0; r < rows; r++) {
      doubles[(size_t)c * rows + r] = data[(size_t)r * cols + c];
      bytes[(size_t)c * rows + r] = data[(size_t)r * cols + c];
    }
  mat_t *mat = create_mat(path);
  matvar_t *var = as_double ? Mat_VarCreate(name, MAT_C_DOUBLE, MAT_T_DOUBLE, 2, dims, doubles, 0)
                            : Mat_VarCreate(name, MAT_C_UINT8, MAT_T_UINT8, 2, dims, bytes, 0);
  FP_CHECK(var, "%s: Mat_VarCreate(%s) failed", path, name);
  FP_CHECK(Mat_VarWrite(mat, var, MAT_COMPRESSION_ZLIB) == 0, "%s: Mat_VarWrite failed", path);
  Mat_VarFree(var);
  Mat_Close(mat);
  free(doubles);
  free(bytes);
}

void fixture_write_mat_strings(const char *path, const char *name, const char *const *strings,
                               int count) {
  matvar_t **cells = fp_calloc((size_t)count + 1, sizeof *cells);
  for (int i = 0; i < count; i++) {
    size_t dims[2] = {1, strlen(strings[i])};
    cells[i] = Mat_VarCreate(NULL, MAT_C_CHAR, MAT_T_UINT8, 2, dims, (void *)strings[i], 0);
    FP_CHECK(cells[i], "%s: Mat_VarCreate(char) failed", path);
  }
  size_t dims[2] = {1, (size_t)count};
  matvar_t *cell = Mat_VarCreate(name, MAT_C_CELL, MAT_T_CELL, 2, dims, cells, 0);
  FP_CHECK(cell, "%s: Mat_VarCreate(cell) failed", path);
  mat_t *mat = create_mat(path);
  FP_CHECK(Mat_VarWrite(mat, cell, MAT_COMPRESSION_NONE) == 0, "%s: Mat_VarWrite failed", path);
  Mat_Close(mat);
  Mat_VarFree(cell); /* frees the cells too */
  free(cells);
}

void fixture_truncate_copy(const char *src, const char *dst, long bytes) {
  FILE *in = fopen(src, "rb");
  FP_CHECK(in, "%s: %s", src, strerror(errno));
  char *buffer = fp_malloc((size_t)bytes);
  FP_CHECK(fread(buffer, 1, (size_t)bytes, in) == (size_t)bytes, "%s: shorter than %ld", src,
           bytes);
  fclose(in);
  FILE *out = fopen(dst, "wb");
  FP_CHECK(out, "%s: %s", dst, strerror(errno));
  FP_CHECK(fwrite(buffer, 1, (size_t)bytes, out) == (size_t)bytes, "%s: write failed", dst);
  FP_CHECK(fclose(out) == 0, "%s: %s", dst, strerror(errno));
  free(buffer);
}

static char work_dir[1024];

void fixture_set_work_dir(const char *dir) {
  FP_CHECK(strlen(dir) < sizeof work_dir, "work directory path too long: %s", dir);
  snprintf(work_dir, sizeof work_dir, "%s", dir);
}

const char *fixture_in_work(const char *name) {
  static char paths[8][1200];
  static int next;
  char *path = paths[next++ % 8];
  snprintf(path, sizeof paths[0], "%s/%s", work_dir, name);
  return path;
}
