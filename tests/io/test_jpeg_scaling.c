/* DCT-scaled JPEG decode (jpeg_read_rgb_scaled / _covering, used by
 * parse_catalog): the scale chosen for (photo size, minimum) pairs, decoded
 * size >= the minimum, a photo under the minimum decoded at full size, the
 * size handed to the minimum callback, the decoded pixels, the letterbox over
 * the photo's fractional span (resize_photo_extent), and errors (truncated,
 * not a JPEG, missing) naming the file.
 * Usage: test_jpeg_scaling WORK_DIR */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fixtures.h"
#include "jpeg_io.h"
#include "resize.h"

/* Linear ramps (JPEG keeps them well, and a block's mean is the ramp at its centre):
 * r = 255 x / (w - 1), g = 255 y / (h - 1), b = 100. */
static double ramp(int i, int size) {
  return 255.0 * i / (size - 1);
}

static const char *write_photo(int height, int width) {
  char name[64];
  snprintf(name, sizeof name, "photo_%dx%d.jpg", height, width);
  const char *path = fixture_in_work(name);
  uint8_t *rgb = fp_malloc((size_t)height * width * 3);
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++) {
      uint8_t *p = rgb + ((size_t)y * width + x) * 3;
      p[0] = (uint8_t)lrint(ramp(x, width));
      p[1] = (uint8_t)lrint(ramp(y, height));
      p[2] = 100;
    }
  fixture_write_jpeg(path, rgb, height, width, 3, 95);
  free(rgb);
  return path;
}

typedef struct scale_case {
  int height, width, min_height, min_width;
  int scale_num, out_height, out_width; /* expected */
} scale_case;

static void test_scale_choice(void) {
  /* output = ceil(size * N / 8), N tried in 1, 2, 4, 8 */
  const scale_case cases[] = {
      {825, 550, 288, 192, 4, 413, 275}, /* CCP at the r34 size: 2/8 gives 207x138 */
      {825, 550, 192, 128, 2, 207, 138}, /* CCP at the demo size */
      {825, 550, 64, 43, 1, 104, 69},    /* CCP at 64x64 (letterbox 64x43) */
      {825, 550, 104, 69, 1, 104, 69},   /* exactly 1/8's output */
      {825, 550, 105, 69, 2, 207, 138},  /* one row more */
      {825, 550, 104, 70, 2, 207, 138},  /* one column more */
      {825, 550, 413, 275, 4, 413, 275}, /* exactly 4/8's output */
      {825, 550, 414, 275, 8, 825, 550}, /* 5/8..7/8 are not used: full size */
      {825, 550, 700, 500, 8, 825, 550},
      {825, 550, 825, 550, 8, 825, 550},
      {825, 550, 0, 0, 1, 104, 69},
      {300, 900, 100, 300, 4, 150, 450}, /* the width decides: 2/8 is 75x225 */
      {100, 80, 288, 192, 8, 100, 80},   /* under the minimum: full size, not upscaled */
      {100, 80, 288, 10, 8, 100, 80},    /* under it in one dimension */
      {17, 9, 2, 1, 1, 3, 2},            /* sizes not multiples of 8 */
  };
  char error[512];
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const scale_case *t = &cases[k];
    const char *path = write_photo(t->height, t->width);
    jpeg_image image;
    FP_CHECK(!jpeg_read_rgb_scaled(path, t->min_height, t->min_width, &image, error, sizeof error),
             "%s", error);
    FP_CHECK(image.scale_num == t->scale_num && image.height == t->out_height &&
                 image.width == t->out_width,
             "%dx%d with minimum %dx%d: decoded at %d/8 to %dx%d, expected %d/8 to %dx%d",
             t->height, t->width, t->min_height, t->min_width, image.scale_num, image.height,
             image.width, t->scale_num, t->out_height, t->out_width);
    FP_CHECK(image.source_height == t->height && image.source_width == t->width,
             "%s: source size %dx%d", path, image.source_height, image.source_width);
    int covers = image.height >= t->min_height && image.width >= t->min_width;
    int under = t->height < t->min_height || t->width < t->min_width;
    FP_CHECK(covers || (under && image.scale_num == 8), "%dx%d: %dx%d is under the minimum %dx%d",
             t->height, t->width, image.height, image.width, t->min_height, t->min_width);
    /* the pixels: each about the ramp at the centre of the photo pixels it covers */
    double worst = 0;
    double step = 8.0 / image.scale_num;
    for (int y = 0; y < image.height; y++)
      for (int x = 0; x < image.width; x++) {
        /* the last row and column cover a partial pixel: skip them when partial */
        if ((y + 1) * step > t->height || (x + 1) * step > t->width) continue;
        const uint8_t *p = image.pixels + ((size_t)y * image.width + x) * 3;
        double cy = (y + 0.5) * step - 0.5, cx = (x + 0.5) * step - 0.5;
        double e = fmax(fabs(p[0] - ramp(1, t->width) * cx), fabs(p[1] - ramp(1, t->height) * cy));
        worst = fmax(worst, fmax(e, fabs(p[2] - 100.0)));
      }
    FP_CHECK(worst <= 6, "%s at %d/8: a pixel is %.1f from the ramp it covers", path,
             image.scale_num, worst);
    free(image.pixels);
    printf("%dx%d, minimum %dx%d: %d/8 -> %dx%d\n", t->height, t->width, t->min_height,
           t->min_width, image.scale_num, image.height, image.width);
  }
}

/* The minimum from the letterbox into a frame, as catalog_load_image asks. */
typedef struct frame_request {
  int height, width, seen_height, seen_width;
} frame_request;

static void letterbox_minimum(void *context, int source_height, int source_width, int *min_height,
                              int *min_width) {
  frame_request *r = context;
  r->seen_height = source_height;
  r->seen_width = source_width;
  letterbox box = letterbox_fit(source_height, source_width, r->height, r->width);
  *min_height = box.resized_h;
  *min_width = box.resized_w;
}

/* A square photo into 288x192: the letterbox is 192x192, so 2/8 (150x150) is too small and 4/8
 * (300x300) covers it, where covering the whole 288x192 frame would also need 4/8; a 1000x1000
 * photo shows the difference: 2/8 = 250x250 covers the 192x192 box but not the frame. */
static void test_covering(void) {
  char error[512];
  const int sizes[][3] = {{600, 600, 4}, {1000, 1000, 2}};
  for (int k = 0; k < 2; k++) {
    const char *path = write_photo(sizes[k][0], sizes[k][1]);
    frame_request request = {288, 192, 0, 0};
    jpeg_image image;
    FP_CHECK(
        !jpeg_read_rgb_covering(path, letterbox_minimum, &request, &image, error, sizeof error),
        "%s", error);
    FP_CHECK(request.seen_height == sizes[k][0] && request.seen_width == sizes[k][1],
             "%s: the minimum was asked for %dx%d", path, request.seen_height, request.seen_width);
    FP_CHECK(image.scale_num == sizes[k][2], "%s: decoded at %d/8, expected %d/8", path,
             image.scale_num, sizes[k][2]);
    free(image.pixels);
  }
}

/* Letterboxing the scaled decode over the photo's span (source * N / 8 decoded pixels) lands
 * on the same photo positions as letterboxing the full decode; resizing as if the photo spanned
 * every decoded pixel (the last one is partial) stretches it. resize_photo_extent with the full
 * extent is resize_photo. */
static void test_letterbox_span(void) {
  enum { SH = 203, SW = 123, H = 24, W = 16 }; /* 1/8: 26x16 pixels spanning 25.375x15.375 */
  const char *path = write_photo(SH, SW);
  char error[512];
  uint8_t *full;
  int fh, fw;
  FP_CHECK(!jpeg_read_rgb(path, &full, &fh, &fw, error, sizeof error), "%s", error);
  letterbox box = letterbox_fit(SH, SW, H, W);
  uint8_t reference[H * W * 3], again[H * W * 3], spanned[H * W * 3], stretched[H * W * 3];
  resize_photo(full, fh, fw, &box, reference, H, W);
  resize_photo_extent(full, fh, fw, fh, fw, &box, again, H, W);
  FP_CHECK(!memcmp(reference, again, sizeof again), "resize_photo_extent(full extent) differs");
  jpeg_image image;
  FP_CHECK(!jpeg_read_rgb_scaled(path, box.resized_h, box.resized_w, &image, error, sizeof error),
           "%s", error);
  FP_CHECK(image.scale_num == 1 && image.height == 26 && image.width == 16, "%dx%d at %d/8",
           image.height, image.width, image.scale_num);
  resize_photo_extent(image.pixels, image.height, image.width, SH / 8.0, SW / 8.0, &box, spanned, H,
                      W);
  resize_photo(image.pixels, image.height, image.width, &box, stretched, H, W);
  double spanned_error = 0, stretched_error = 0;
  int n = 0;
  for (int y = 0; y < box.resized_h; y++)
    for (int x = 0; x < box.resized_w; x++)
      for (int c = 0; c < 2; c++) {
        size_t i = ((size_t)(y + box.offset_y) * W + x + box.offset_x) * 3 + c;
        spanned_error += abs(spanned[i] - reference[i]);
        stretched_error += abs(stretched[i] - reference[i]);
        n++;
      }
  spanned_error /= n;
  stretched_error /= n;
  printf("letterbox of the 1/8 decode: mean |difference| from the full decode's %.2f over the "
         "photo's span, %.2f stretched over all decoded pixels\n",
         spanned_error, stretched_error);
  FP_CHECK(spanned_error < 1.5 && stretched_error > 2 * spanned_error,
           "letterbox of the scaled decode: %.2f over the span, %.2f stretched", spanned_error,
           stretched_error);
  free(image.pixels);
  free(full);
}

static void test_errors(void) {
  const char *good = write_photo(825, 550);
  FILE *f = fopen(good, "rb");
  FP_CHECK(f && fseek(f, 0, SEEK_END) == 0, "%s", good);
  long size = ftell(f);
  fclose(f);
  const char *truncated = fixture_in_work("truncated_825x550.jpg"),
             *garbage = fixture_in_work("garbage.jpg");
  fixture_truncate_copy(good, truncated, size / 2);
  f = fopen(garbage, "wb");
  FP_CHECK(f && fputs("this is not a JPEG file at all", f) >= 0 && fclose(f) == 0, "%s", garbage);
  const char *bad[] = {truncated, garbage, fixture_in_work("missing.jpg")};
  /* minimum 0x0 (1/8, the fewest pixels decoded) and a minimum the 1/2 scale covers */
  const int minimums[][2] = {{0, 0}, {288, 192}};
  char error[512];
  for (int b = 0; b < 3; b++)
    for (int m = 0; m < 2; m++) {
      error[0] = '\0';
      jpeg_image image;
      image.pixels = (uint8_t *)1;
      FP_CHECK(jpeg_read_rgb_scaled(bad[b], minimums[m][0], minimums[m][1], &image, error,
                                    sizeof error) == -1,
               "%s: decoded without error at minimum %dx%d", bad[b], minimums[m][0],
               minimums[m][1]);
      FP_CHECK(!image.pixels && strstr(error, bad[b]), "%s: error '%s' does not name the file",
               bad[b], error);
      if (b == 0) FP_CHECK(strstr(error, "truncated") != NULL, "%s: error '%s'", truncated, error);
      if (m == 0) printf("expected error: %s\n", error);
    }
}

int main(int argc, char **argv) {
  FP_CHECK(argc == 2, "usage: test_jpeg_scaling WORK_DIR");
  fixture_set_work_dir(argv[1]);
  test_scale_choice();
  test_covering();
  test_letterbox_span();
  test_errors();
  printf("jpeg scaling: ok\n");
  return 0;
}
