/* Source readers: JPEG decode (good, grayscale, truncated, garbage), .mat
 * matrices (column-major transposition, double class, missing variable,
 * out-of-range values), cell arrays of strings, PNG writing.
 * Usage: test_readers WORK_DIR */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "check.h"
#include "fixtures.h"
#include "jpeg_io.h"
#include "mat_io.h"
#include "png_io.h"

/* Smooth colours JPEG keeps well: r = 4x, g = 3y, b = 128 + (x - y). */
static void gradient(uint8_t *rgb, int height, int width) {
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++) {
      uint8_t *p = rgb + ((size_t)y * width + x) * 3;
      p[0] = (uint8_t)(4 * x);
      p[1] = (uint8_t)(3 * y);
      p[2] = (uint8_t)(128 + x - y);
    }
}

/* A copy of `good` whose header declares 60000 x 60000 pixels is refused before any buffer is
 * allocated for it (a 300-byte file asked for 3 GB; found by tests/fuzz). */
/* A copy of `good` whose baseline SOF declares side x side pixels. */
static void write_declared_size(const char *good, const char *huge, int side) {
  FILE *in = fopen(good, "rb");
  static uint8_t bytes[1 << 16];
  size_t size = in ? fread(bytes, 1, sizeof bytes, in) : 0;
  FP_CHECK(in && size > 0 && fclose(in) == 0, "%s", good);
  size_t sof = 2;
  while (sof + 9 < size && !(bytes[sof] == 0xFF && bytes[sof + 1] == 0xC0)) sof++;
  FP_CHECK(sof + 9 < size, "%s: no baseline SOF marker", good);
  bytes[sof + 5] = bytes[sof + 7] = (uint8_t)(side >> 8); /* height and width, big-endian */
  bytes[sof + 6] = bytes[sof + 8] = side & 0xFF;
  FILE *out = fopen(huge, "wb");
  FP_CHECK(out && fwrite(bytes, 1, size, out) == size && fclose(out) == 0, "%s", huge);
}

/* Refused from the header: 60000 x 60000 at full size (the buffer alone would be 10 GB), and
 * 20000 x 20000 even at 1/8 (2500 x 2500 decoded, but every block of 400 megapixels decoded). */
static void test_jpeg_declared_size(const char *good) {
  const char *huge = fixture_in_work("huge.jpg"), *large = fixture_in_work("large.jpg");
  write_declared_size(good, huge, 60000);
  write_declared_size(good, large, 20000);
  char error[512] = "";
  uint8_t *decoded = (uint8_t *)1;
  int h, w;
  FP_CHECK(jpeg_read_rgb(huge, &decoded, &h, &w, error, sizeof error) == -1 && !decoded,
           "%s: decoded although it declares 60000x60000 pixels", huge);
  FP_CHECK(strstr(error, huge) && strstr(error, "60000x60000") && strstr(error, "megapixels"),
           "%s: error '%s' does not name the file and the declared size", huge, error);
  printf("expected error: %s\n", error);
  jpeg_image image;
  FP_CHECK(jpeg_read_rgb_scaled(large, 10, 10, &image, error, sizeof error) == -1 &&
               strstr(error, large) && strstr(error, "20000x20000") &&
               strstr(error, "megapixels a photo may have"),
           "%s: not refused at 1/8 although it declares 20000x20000 pixels: '%s'", large, error);
  printf("expected error: %s\n", error);
}

static void test_jpeg(void) {
  enum { H = 40, W = 56 };
  uint8_t rgb[H * W * 3], gray[H * W];
  gradient(rgb, H, W);
  for (int i = 0; i < H * W; i++) gray[i] = (uint8_t)(i % W * 4);
  const char *good = fixture_in_work("good.jpg"), *mono = fixture_in_work("gray.jpg");
  fixture_write_jpeg(good, rgb, H, W, 3, 95);
  fixture_write_jpeg(mono, gray, H, W, 1, 95);
  char error[512];
  uint8_t *decoded;
  int h, w;
  FP_CHECK(jpeg_read_rgb(good, &decoded, &h, &w, error, sizeof error) == 0, "%s", error);
  FP_CHECK(h == H && w == W, "%s: decoded %dx%d, wrote %dx%d", good, h, w, H, W);
  int worst = 0;
  for (int i = 0; i < H * W * 3; i++) {
    int d = abs(decoded[i] - rgb[i]);
    if (d > worst) worst = d;
  }
  FP_CHECK(worst <= 12, "%s: decoded pixels differ by up to %d from the written ones", good, worst);
  free(decoded);
  FP_CHECK(jpeg_read_rgb(mono, &decoded, &h, &w, error, sizeof error) == 0, "%s", error);
  for (int i = 0; i < H * W; i++)
    FP_CHECK(decoded[i * 3] == decoded[i * 3 + 1] && decoded[i * 3] == decoded[i * 3 + 2] &&
                 abs(decoded[i * 3] - gray[i]) <= 8,
             "%s: pixel %d not the grey level expanded to RGB", mono, i);
  free(decoded);

  const char *truncated = fixture_in_work("truncated.jpg"),
             *garbage = fixture_in_work("garbage.jpg");
  fixture_truncate_copy(good, truncated, 600);
  FILE *f = fopen(garbage, "wb");
  FP_CHECK(f && fputs("this is not a JPEG file at all", f) >= 0 && fclose(f) == 0, "%s", garbage);
  const char *bad[] = {truncated, garbage, fixture_in_work("missing.jpg")};
  for (int b = 0; b < 3; b++) {
    error[0] = '\0';
    decoded = (uint8_t *)1;
    FP_CHECK(jpeg_read_rgb(bad[b], &decoded, &h, &w, error, sizeof error) == -1,
             "%s: decoded without error", bad[b]);
    FP_CHECK(!decoded && strstr(error, bad[b]), "%s: error '%s' does not name the file", bad[b],
             error);
    printf("expected error: %s\n", error);
  }
  test_jpeg_declared_size(good);
}

static void expect_mat_refused(const char *path, const char *phrase) {
  char error[512] = "", **strings = NULL;
  int count = 0;
  FP_CHECK(mat_read_string_cell(path, "label_list", &strings, &count, error, sizeof error) == -1 &&
               strstr(error, path) && strstr(error, phrase),
           "%s: not refused with '%s': '%s'", path, phrase, error);
  printf("expected error: %s\n", error);
}

/* The 1 x 3 cell array `uncompressed` (label_list.mat as fixture_write_mat_strings writes it)
 * with 4 bytes at `at` replaced, written to `name`, must be refused with `phrase` in the error. */
static void expect_patched_refused(const char *uncompressed, const char *name, size_t at,
                                   uint32_t value, const char *phrase) {
  static uint8_t bytes[1 << 16];
  FILE *in = fopen(uncompressed, "rb");
  size_t size = in ? fread(bytes, 1, sizeof bytes, in) : 0;
  FP_CHECK(in && size > 200 && fclose(in) == 0, "%s", uncompressed);
  FP_CHECK(bytes[126] == 'I' && bytes[128] == 14 && bytes[152] == 5 && bytes[192] == 14,
           "%s: not a little-endian uncompressed cell with its dimensions at byte 152 and its "
           "first element at byte 192",
           uncompressed);
  const uint8_t little_endian[4] = {value & 0xff, value >> 8 & 0xff, value >> 16 & 0xff,
                                    value >> 24};
  memcpy(bytes + at, little_endian, sizeof little_endian);
  const char *hostile = fixture_in_work(name);
  FILE *out = fopen(hostile, "wb");
  FP_CHECK(out && fwrite(bytes, 1, size, out) == size && fclose(out) == 0, "%s", hostile);
  expect_mat_refused(hostile, phrase);
}

/* Matrices whose headers libmatio sizes allocations from, refused before it reads them (found
 * by tests/fuzz): a dimensions field declaring 4 GB inside a small file (it asked for 8 GB), a
 * negative dimension (-3 x 2044 asked for 70 TB), a cell whose element is not a matrix (2 GB),
 * a header without version and endian indicator (read as a version 4 file: a 10 s memset), a
 * double array where a variable belongs (6 GB). */
static void test_mat_hostile_headers(const char *uncompressed) {
  expect_patched_refused(uncompressed, "nested_dims.mat", 156, 0xF9000008u, "its matrix ends");
  expect_patched_refused(uncompressed, "negative_dims.mat", 160, (uint32_t)-3, "dimension 1 = -3");
  expect_patched_refused(uncompressed, "cell_of_doubles.mat", 192, 9,
                         "does not hold the data of its 3 elements");
  expect_patched_refused(uncompressed, "version_4.mat", 124, 0, "not a MATLAB version 5");
  expect_patched_refused(uncompressed, "double_as_variable.mat", 128, 9, "where a variable");
}

/* The uncompressed file's data elements (after the 128-byte header) compressed into one
 * element, as MATLAB writes version 7 files: header, tag (15, length), zlib stream of `keep`
 * of its bytes (all when keep is the whole stream). */
static void write_compressed_mat(const char *path, const uint8_t *file, size_t size, int cut) {
  uLongf packed_size = compressBound((uLong)(size - 128));
  uint8_t *packed = malloc(packed_size);
  FP_CHECK(packed && compress2(packed, &packed_size, file + 128, (uLong)(size - 128), 6) == Z_OK,
           "compress2");
  if (cut) packed_size /= 2;
  uint32_t tag[2] = {15, (uint32_t)packed_size};
  FILE *out = fopen(path, "wb");
  FP_CHECK(out && fwrite(file, 1, 128, out) == 128 && fwrite(tag, 1, 8, out) == 8 &&
               fwrite(packed, 1, packed_size, out) == packed_size && fclose(out) == 0,
           "%s", path);
  free(packed);
}

/* The same checks inside a compressed element (how CCP's files and every MATLAB 7 file store
 * their variables): libmatio inflates it and trusts what it finds. A whole one reads; one whose
 * matrix declares 4 GB, and one whose zlib stream is cut short (its tag's length matching, so
 * the file looks whole), are refused. */
static void test_mat_compressed(const char *uncompressed) {
  static uint8_t bytes[1 << 16];
  FILE *in = fopen(uncompressed, "rb");
  size_t size = in ? fread(bytes, 1, sizeof bytes, in) : 0;
  FP_CHECK(in && size > 160 && fclose(in) == 0, "%s", uncompressed);
  const char *whole = fixture_in_work("compressed.mat"),
             *cut = fixture_in_work("compressed_cut.mat"),
             *hostile = fixture_in_work("compressed_nested_dims.mat");
  write_compressed_mat(whole, bytes, size, 0);
  write_compressed_mat(cut, bytes, size, 1);
  char error[512] = "", **strings = NULL;
  int count = 0;
  FP_CHECK(mat_read_string_cell(whole, "label_list", &strings, &count, error, sizeof error) == 0 &&
               count == 3,
           "%s: %s", whole, error);
  mat_free_strings(strings, count);
  expect_mat_refused(cut, "does not inflate whole");
  const uint8_t declared[4] = {0x08, 0x00, 0x00, 0xF9}; /* 0xF9000008 bytes */
  memcpy(bytes + 156, declared, sizeof declared);
  write_compressed_mat(hostile, bytes, size, 0);
  expect_mat_refused(hostile, "its matrix ends");
}

static void test_mat(void) {
  enum { R = 3, C = 5 };
  uint8_t matrix[R * C];
  for (int i = 0; i < R * C; i++) matrix[i] = (uint8_t)(10 * i + 1);
  const char *as_double = fixture_in_work("double.mat"), *as_uint8 = fixture_in_work("uint8.mat");
  fixture_write_mat_matrix(as_double, "groundtruth", matrix, R, C, 1);
  fixture_write_mat_matrix(as_uint8, "groundtruth", matrix, R, C, 0);
  const char *files[] = {as_double, as_uint8};
  char error[512];
  for (int f = 0; f < 2; f++) {
    uint8_t *data;
    int rows, cols;
    FP_CHECK(mat_read_uint8_matrix(files[f], "groundtruth", &data, &rows, &cols, error,
                                   sizeof error) == 0,
             "%s", error);
    FP_CHECK(rows == R && cols == C, "%s: %dx%d, wrote %dx%d", files[f], rows, cols, R, C);
    FP_CHECK(!memcmp(data, matrix, sizeof matrix), "%s: matrix not read back row-major", files[f]);
    free(data);
  }
  uint8_t *data;
  int rows, cols;
  FP_CHECK(mat_read_uint8_matrix(as_double, "tags", &data, &rows, &cols, error, sizeof error) ==
                   -1 &&
               strstr(error, as_double) && strstr(error, "tags"),
           "missing variable: '%s'", error);
  printf("expected error: %s\n", error);

  const char *names[] = {"null", "accessories", "t-shirt"};
  const char *cell = fixture_in_work("label_list.mat");
  fixture_write_mat_strings(cell, "label_list", names, 3);
  char **strings;
  int count;
  FP_CHECK(mat_read_string_cell(cell, "label_list", &strings, &count, error, sizeof error) == 0,
           "%s", error);
  FP_CHECK(count == 3, "%s: %d strings", cell, count);
  for (int i = 0; i < 3; i++)
    FP_CHECK(!strcmp(strings[i], names[i]), "%s: string %d is '%s'", cell, i, strings[i]);
  mat_free_strings(strings, count);
  FP_CHECK(mat_read_string_cell(as_double, "groundtruth", &strings, &count, error, sizeof error) ==
               -1,
           "a matrix read as a cell array");
  printf("expected error: %s\n", error);
  test_mat_hostile_headers(cell);
  test_mat_compressed(cell);
}

static void test_png(void) {
  enum { H = 9, W = 7 };
  uint8_t rgb[H * W * 3];
  gradient(rgb, H, W);
  const char *path = fixture_in_work("preview.png");
  png_write_u8(path, rgb, H, W, 3);
  png_image image;
  memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  FP_CHECK(png_image_begin_read_from_file(&image, path), "%s: %s", path, image.message);
  FP_CHECK(image.height == H && image.width == W, "%s: %ux%u", path, image.height, image.width);
  image.format = PNG_FORMAT_RGB;
  uint8_t back[H * W * 3];
  FP_CHECK(png_image_finish_read(&image, NULL, back, 0, NULL), "%s: %s", path, image.message);
  FP_CHECK(!memcmp(back, rgb, sizeof rgb), "%s: pixels differ", path);
}

int main(int argc, char **argv) {
  FP_CHECK(argc == 2, "usage: test_readers WORK_DIR");
  fixture_set_work_dir(argv[1]);
  test_jpeg();
  test_mat();
  test_png();
  printf("readers ok\n");
  return 0;
}
