/* Not a test: the measurement of results/jpeg_dct_scaling.md. Over the given
 * photos, single thread:
 *  1. per libjpeg-turbo scale N/8 (N = 1..8, forced): decode from memory +
 *     letterbox into HEIGHT x WIDTH, the per-photo minimum over REPS runs, and
 *     the mean |difference| of the letterboxed pixels from the full decode's;
 *  2. the two code paths as they are, files read from disk (page cache): full
 *     decode + letterbox (ingest, jpeg_read_rgb + resize_photo) against the
 *     scaled decode + letterbox of parse_catalog (jpeg_read_rgb_covering +
 *     resize_photo_extent), alternating, ROUNDS passes each; how far apart their
 *     letterboxed pixels are, and how far they would be if the scaled decode
 *     were resized as if it spanned all its pixels (resize_photo).
 * Usage: bench_jpeg_scaling HEIGHT WIDTH REPS ROUNDS PHOTO.jpg... */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jpeglib.h>

#include "check.h"
#include "jpeg_io.h"
#include "resize.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- 1. forced scales, from memory (default error handler: exits on a bad file) ---- */

typedef struct file_bytes {
  unsigned char *data;
  unsigned long size;
} file_bytes;

static file_bytes read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  FP_CHECK(f, "%s: cannot open", path);
  FP_CHECK(fseek(f, 0, SEEK_END) == 0, "%s: seek", path);
  long size = ftell(f);
  FP_CHECK(size > 0 && fseek(f, 0, SEEK_SET) == 0, "%s: size", path);
  file_bytes b = {fp_malloc((size_t)size), (unsigned long)size};
  FP_CHECK(fread(b.data, 1, (size_t)size, f) == (size_t)size, "%s: read", path);
  fclose(f);
  return b;
}

/* Decodes at n/8 and letterboxes into out; returns the box, and the letterbox's seconds. */
static letterbox decode_at(file_bytes b, int n, int height, int width, uint8_t *out,
                           double *letterbox_seconds) {
  struct jpeg_decompress_struct cinfo;
  struct jpeg_error_mgr error;
  cinfo.err = jpeg_std_error(&error);
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, b.data, b.size);
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = JCS_RGB;
  cinfo.scale_num = (unsigned)n;
  cinfo.scale_denom = 8;
  jpeg_start_decompress(&cinfo);
  size_t row_bytes = (size_t)cinfo.output_width * 3;
  uint8_t *pixels = fp_malloc(row_bytes * cinfo.output_height);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = pixels + row_bytes * cinfo.output_scanline;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  double t = now();
  letterbox box = letterbox_fit((int)cinfo.image_height, (int)cinfo.image_width, height, width);
  resize_photo_extent(pixels, (int)cinfo.output_height, (int)cinfo.output_width,
                      cinfo.image_height * n / 8.0, cinfo.image_width * n / 8.0, &box, out, height,
                      width);
  *letterbox_seconds = now() - t;
  jpeg_destroy_decompress(&cinfo);
  free(pixels);
  return box;
}

static double abs_difference(const uint8_t *a, const uint8_t *b, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; i++) sum += abs(a[i] - b[i]);
  return sum;
}

static void forced_scales(char **paths, int count, int height, int width, int reps) {
  size_t plane = (size_t)height * width * 3;
  uint8_t *reference = fp_malloc(plane), *out = fp_malloc(plane);
  double seconds[9] = {0}, letterbox_seconds[9] = {0}, difference[9] = {0}, values = 0;
  for (int i = 0; i < count; i++) {
    file_bytes b = read_file(paths[i]);
    for (int n = 8; n >= 1; n--) {
      double best = 1e30, best_letterbox = 0;
      letterbox box;
      for (int r = 0; r < reps; r++) {
        double t = now(), in_letterbox;
        box = decode_at(b, n, height, width, n == 8 ? reference : out, &in_letterbox);
        t = now() - t;
        if (t < best) {
          best = t;
          best_letterbox = in_letterbox;
        }
      }
      seconds[n] += best;
      letterbox_seconds[n] += best_letterbox;
      if (n == 8)
        values += (double)box.resized_h * box.resized_w * 3;
      else
        difference[n] += abs_difference(reference, out, plane);
    }
    free(b.data);
  }
  printf("1. forced scale N/8, decode from memory + letterbox into %dx%d, min of %d runs:\n",
         height, width, reps);
  printf("| N/8 | ms per photo | of which letterbox | vs 8/8 | mean abs diff from 8/8 (0..255) "
         "|\n|---|---|---|---|---|\n");
  for (int n = 1; n <= 8; n++)
    printf("| %d/8 | %.3f | %.3f | %.2fx | %.3f |\n", n, 1e3 * seconds[n] / count,
           1e3 * letterbox_seconds[n] / count, seconds[8] / seconds[n], difference[n] / values);
  free(reference);
  free(out);
}

/* ---- 2. the code paths ---- */

static void cover_box(void *context, int source_height, int source_width, int *min_height,
                      int *min_width) {
  const int *frame = context;
  letterbox box = letterbox_fit(source_height, source_width, frame[0], frame[1]);
  *min_height = box.resized_h;
  *min_width = box.resized_w;
}

/* ingest's: full decode + letterbox */
static letterbox full_path(const char *path, int height, int width, uint8_t *out) {
  char error[512];
  uint8_t *photo;
  int h, w;
  FP_CHECK(!jpeg_read_rgb(path, &photo, &h, &w, error, sizeof error), "%s", error);
  letterbox box = letterbox_fit(h, w, height, width);
  resize_photo(photo, h, w, &box, out, height, width);
  free(photo);
  return box;
}

/* parse_catalog's: scaled decode + letterbox over the photo's span; with `naive`, also the
 * scaled decode resized as if the photo spanned all its pixels. */
static int scaled_path(const char *path, int height, int width, uint8_t *out, uint8_t *naive,
                       letterbox *box) {
  char error[512];
  jpeg_image image;
  int frame[2] = {height, width};
  FP_CHECK(!jpeg_read_rgb_covering(path, cover_box, frame, &image, error, sizeof error), "%s",
           error);
  *box = letterbox_fit(image.source_height, image.source_width, height, width);
  FP_CHECK(image.height >= box->resized_h && image.width >= box->resized_w,
           "%s: decoded %dx%d, under the %dx%d letterbox", path, image.height, image.width,
           box->resized_h, box->resized_w);
  resize_photo_extent(image.pixels, image.height, image.width,
                      image.source_height * image.scale_num / 8.0,
                      image.source_width * image.scale_num / 8.0, box, out, height, width);
  if (naive) resize_photo(image.pixels, image.height, image.width, box, naive, height, width);
  free(image.pixels);
  return image.scale_num;
}

static void code_paths(char **paths, int count, int height, int width, int rounds) {
  size_t plane = (size_t)height * width * 3;
  uint8_t *full = fp_malloc(plane), *scaled = fp_malloc(plane), *naive = fp_malloc(plane);
  double sum = 0, naive_sum = 0, values = 0, signed_sum[3] = {0, 0, 0};
  long over_8 = 0;
  int worst = 0, scales[9] = {0};
  for (int i = 0; i < count; i++) {
    letterbox a = full_path(paths[i], height, width, full), b;
    scales[scaled_path(paths[i], height, width, scaled, naive, &b)]++;
    FP_CHECK(!memcmp(&a, &b, sizeof a), "%s: the letterboxes differ", paths[i]);
    for (size_t p = 0; p < plane; p++) {
      int d = abs(full[p] - scaled[p]);
      signed_sum[p % 3] += scaled[p] - full[p];
      sum += d;
      over_8 += d > 8;
      if (d > worst) worst = d;
    }
    naive_sum += abs_difference(full, naive, plane);
    values += (double)b.resized_h * b.resized_w * 3;
  }
  printf("2. the code paths into %dx%d: scales used:", height, width);
  for (int n = 1; n <= 8; n++)
    if (scales[n]) printf(" %d/8 for %d photos", n, scales[n]);
  printf("\n   letterboxed pixels, full vs scaled decode: mean abs diff %.3f (0..255), max %d, "
         "%.2f%% of values differ by more than 8; resized as if spanning all decoded pixels: "
         "mean abs diff %.3f\n",
         sum / values, worst, 100.0 * (double)over_8 / values, naive_sum / values);
  printf("   mean signed difference (scaled - full) per channel R G B: %+.3f %+.3f %+.3f\n",
         3 * signed_sum[0] / values, 3 * signed_sum[1] / values, 3 * signed_sum[2] / values);

  double seconds[2] = {0, 0};
  for (int r = 0; r < rounds; r++)
    for (int k = 0; k < 2; k++) {
      int use_full = (k == 0) == (r % 2 == 0);
      double t = now();
      for (int i = 0; i < count; i++) {
        letterbox box;
        if (use_full)
          full_path(paths[i], height, width, full);
        else
          scaled_path(paths[i], height, width, scaled, NULL, &box);
      }
      seconds[use_full ? 0 : 1] += now() - t;
    }
  double full_ms = 1e3 * seconds[0] / rounds / count, scaled_ms = 1e3 * seconds[1] / rounds / count;
  printf("   read + decode + letterbox, 1 thread, %d photos x %d rounds (alternating): full %.3f "
         "ms/photo, scaled %.3f ms/photo, %.2fx\n",
         count, rounds, full_ms, scaled_ms, full_ms / scaled_ms);
  free(full);
  free(scaled);
  free(naive);
}

int main(int argc, char **argv) {
  FP_CHECK(argc >= 6, "usage: bench_jpeg_scaling HEIGHT WIDTH REPS ROUNDS PHOTO.jpg...");
  int height = atoi(argv[1]), width = atoi(argv[2]), reps = atoi(argv[3]), rounds = atoi(argv[4]);
  FP_CHECK(height > 0 && width > 0 && reps > 0 && rounds > 0, "bad HEIGHT WIDTH REPS ROUNDS");
  forced_scales(argv + 5, argc - 5, height, width, reps);
  code_paths(argv + 5, argc - 5, height, width, rounds);
  return 0;
}
