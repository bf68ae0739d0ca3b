/* Tunable augmentation (io/augment.[ch]) without a dataset:
 *  - each transform is applied with its probability: over many images the frequency is within
 *    5 standard deviations of p, never for p = 0, always for p = 1; two transforms are drawn
 *    independently of each other; the drawn values stay in their ranges;
 *  - a transform's probability changes no other transform's parameters;
 *  - the "all" preset draws what the augmentation drew before it had settings;
 *  - neutral parameters reproduce the input exactly (photo/255, the mask), flip alone mirrors
 *    it exactly, and a whole-pixel shift through the general warp moves it exactly;
 *  - the presets and the range checks.
 *   test_augment */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "augment.h"
#include "check.h"
#include "shard.h"

enum { H = 24, W = 20, IMAGES = 20000 };

typedef enum { FLIP, ROTATE, ZOOM, SHIFT, BRIGHTNESS, CONTRAST, TRANSFORMS } transform;
static const char *names[TRANSFORMS] = {"flip",  "rotate",     "zoom",
                                        "shift", "brightness", "contrast"};

static int applied(const augment_params *p, transform t) {
  switch (t) {
  case FLIP:
    return p->flip;
  case ROTATE:
    return p->angle != 0.0;
  case ZOOM:
    return p->zoom != 1.0;
  case SHIFT:
    return p->shift_y != 0.0 || p->shift_x != 0.0;
  case BRIGHTNESS:
    return p->brightness != 1.0;
  case CONTRAST:
    return p->contrast != 1.0;
  default:
    return -1;
  }
}

/* Field by field: the struct has padding after flip. */
static int same_params(const augment_params *a, const augment_params *b) {
  return a->flip == b->flip && a->angle == b->angle && a->zoom == b->zoom &&
         a->shift_y == b->shift_y && a->shift_x == b->shift_x && a->brightness == b->brightness &&
         a->contrast == b->contrast;
}

static double *probability(augment_settings *s, transform t) {
  double *fields[TRANSFORMS] = {&s->flip,  &s->rotate,     &s->zoom,
                                &s->shift, &s->brightness, &s->contrast};
  return fields[t];
}

/* |count - n p| within 5 standard deviations; exactly 0 or n for p = 0 or 1. */
static void check_frequency(const char *what, long count, long n, double p) {
  double sd = sqrt(n * p * (1 - p)), deviation = fabs(count - n * p);
  if (p == 0 || p == 1)
    FP_CHECK(count == (p == 0 ? 0 : n), "%s: p = %g but %ld of %ld", what, p, count, n);
  else
    FP_CHECK(deviation <= 5 * sd, "%s: %ld of %ld, expected %.1f +- %.1f (5 sd)", what, count, n,
             n * p, 5 * sd);
  printf("  %-28s p %.2f: %6ld of %ld (%.4f)\n", what, p, count, n, (double)count / n);
}

static void check_ranges(const augment_settings *s, const augment_params *p) {
  double max_angle = s->rotate_degrees * 3.14159265358979323846 / 180.0;
  FP_CHECK(fabs(p->angle) <= max_angle, "angle %g beyond %g", p->angle, max_angle);
  FP_CHECK(p->zoom == 1.0 || (p->zoom >= s->zoom_min && p->zoom <= s->zoom_max), "zoom %g",
           p->zoom);
  FP_CHECK(fabs(p->shift_y) <= s->shift_fraction * H && fabs(p->shift_x) <= s->shift_fraction * W,
           "shift %g, %g", p->shift_y, p->shift_x);
  FP_CHECK(fabs(p->brightness - 1) <= s->brightness_range + 1e-15, "brightness %g", p->brightness);
  FP_CHECK(fabs(p->contrast - 1) <= s->contrast_range + 1e-15, "contrast %g", p->contrast);
}

static void test_probabilities(void) {
  const double rows[][TRANSFORMS] = {
      {0.5, 0, 0, 0, 0, 0}, /* the default: flips only */
      {0, 1, 1, 1, 1, 1},
      {1, 0.1, 0.25, 0.5, 0.75, 0.9},
      {0.05, 0.3, 0.6, 0.01, 0.99, 0.5},
  };
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
    augment_settings s;
    augment_preset("none", &s);
    s.rotate_degrees = 25;
    s.zoom_min = 0.5;
    s.zoom_max = 2;
    s.shift_fraction = 0.3;
    s.brightness_range = s.contrast_range = 0.4;
    for (int t = 0; t < TRANSFORMS; t++) *probability(&s, t) = rows[r][t];
    long count[TRANSFORMS] = {0}, both = 0; /* both: rotate and brightness */
    for (int epoch = 0; epoch < 2; epoch++)
      for (int64_t i = 0; i < IMAGES / 2; i++) {
        augment_params p = augment_draw(&s, 7 + r, epoch, i, H, W);
        check_ranges(&s, &p);
        for (int t = 0; t < TRANSFORMS; t++) count[t] += applied(&p, t);
        both += applied(&p, ROTATE) && applied(&p, BRIGHTNESS);
      }
    printf("settings %zu:\n", r);
    for (int t = 0; t < TRANSFORMS; t++) check_frequency(names[t], count[t], IMAGES, rows[r][t]);
    check_frequency("rotate and brightness", both, IMAGES, rows[r][ROTATE] * rows[r][BRIGHTNESS]);
  }
}

/* Turning one transform on or off leaves the others' parameters as they were; the same
 * (seed, epoch, index) gives the same parameters. */
static void test_independence(void) {
  augment_settings all, some;
  augment_preset("all", &all);
  augment_preset("all", &some);
  some.flip = some.zoom = some.contrast = 0;
  for (int64_t i = 0; i < 1000; i++) {
    augment_params a = augment_draw(&all, 3, 1, i, H, W), b = augment_draw(&some, 3, 1, i, H, W),
                   c = augment_draw(&all, 3, 1, i, H, W);
    FP_CHECK(same_params(&a, &c), "image %lld: the same draw twice differs", (long long)i);
    FP_CHECK(!b.flip && b.zoom == 1.0 && b.contrast == 1.0, "image %lld: an off transform applied",
             (long long)i);
    FP_CHECK(a.angle == b.angle && a.shift_y == b.shift_y && a.shift_x == b.shift_x &&
                 a.brightness == b.brightness,
             "image %lld: turning flip/zoom/contrast off changed rotate/shift/brightness",
             (long long)i);
  }
}

/* The augmentation before it had settings: everything always on, flips half the time. */
static augment_params old_draw(uint64_t seed, int epoch, int64_t index, int height, int width) {
  double u[7];
  for (int d = 0; d < 7; d++)
    u[d] = shard_uniform(seed, 0x4155474dULL, ((uint64_t)(uint32_t)epoch << 32) | (uint64_t)d,
                         (uint64_t)index);
  const double max_angle = 10.0 * 3.14159265358979323846 / 180.0;
  augment_params p;
  p.flip = 0 + (1 - 0) * u[0] < 0.5;
  p.angle = -max_angle + (max_angle - -max_angle) * u[1];
  p.zoom = 0.7 + (1.3 - 0.7) * u[2];
  p.shift_y = (-0.1 + (0.1 - -0.1) * u[3]) * height;
  p.shift_x = (-0.1 + (0.1 - -0.1) * u[4]) * width;
  p.brightness = 0.8 + (1.2 - 0.8) * u[5];
  p.contrast = 0.8 + (1.2 - 0.8) * u[6];
  return p;
}

static void test_all_preset_is_the_old_behaviour(void) {
  augment_settings all;
  augment_preset("all", &all);
  for (int epoch = 0; epoch < 3; epoch++)
    for (int64_t i = 0; i < 2000; i++) {
      augment_params a = augment_draw(&all, 11, epoch, i, 288, 192),
                     b = old_draw(11, epoch, i, 288, 192);
      FP_CHECK(same_params(&a, &b),
               "epoch %d image %lld: preset all draws differently from the old augmentation", epoch,
               (long long)i);
    }
}

static uint8_t photo[H * W * 3], mask[H * W], mask_out[H * W];
static float out[3 * H * W], expected[3 * H * W];

static void fill_input(int64_t seed) {
  for (int i = 0; i < H * W * 3; i++) photo[i] = (uint8_t)(shard_hash(seed, 1, i, 0) & 255);
  for (int i = 0; i < H * W; i++) mask[i] = (uint8_t)(shard_hash(seed, 2, i, 0) % 5);
}

/* expected = the photo moved by (dy, dx) whole pixels and mirrored with flip, /255 as the loader
 * does without augmentation; 0 (photo) and 255 (mask) from outside. Checks out and mask_out. */
static void check_moved(const char *what, int flip, int dy, int dx) {
  size_t plane = (size_t)H * W;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int sy = y - dy, sx = x - dx;
      if (flip) sx = W - 1 - sx;
      int inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
      size_t o = (size_t)y * W + x, s = (size_t)sy * W + sx;
      for (int c = 0; c < 3; c++) expected[c * plane + o] = inside ? photo[s * 3 + c] / 255.0f : 0;
      FP_CHECK(mask_out[o] == (inside ? mask[s] : 255), "%s: mask (%d,%d) is %d", what, y, x,
               mask_out[o]);
    }
  FP_CHECK(!memcmp(out, expected, sizeof out), "%s: photo not bit-identical", what);
}

static void test_identity(void) {
  const augment_params neutral = {0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0};
  augment_settings none, flip;
  augment_preset("none", &none);
  augment_preset("flip", &flip);
  long flipped = 0;
  for (int64_t i = 0; i < 200; i++) {
    fill_input(i);
    augment_params p = augment_draw(&none, 5, 0, i, H, W);
    FP_CHECK(same_params(&p, &neutral), "image %lld: preset none drew a transform", (long long)i);
    augment_apply(&p, photo, mask, H, W, out, mask_out);
    check_moved("all probabilities 0", 0, 0, 0);
    p = augment_draw(&flip, 5, 0, i, H, W);
    flipped += p.flip;
    augment_apply(&p, photo, mask, H, W, out, mask_out);
    check_moved(p.flip ? "flip only (flipped)" : "flip only (not flipped)", p.flip, 0, 0);
  }
  FP_CHECK(flipped > 50 && flipped < 150, "preset flip: %ld of 200 flipped", flipped);
  /* The general warp (taken whenever there is a shift) is exact for whole-pixel moves too. */
  fill_input(99);
  for (int flip_it = 0; flip_it <= 1; flip_it++) {
    augment_params p = neutral;
    p.flip = flip_it;
    p.shift_y = -2;
    p.shift_x = 3;
    augment_apply(&p, photo, mask, H, W, out, mask_out);
    check_moved(flip_it ? "whole-pixel shift, flipped" : "whole-pixel shift", flip_it, -2, 3);
  }
  printf("identity: all-0 and flip-only outputs bit-identical to the input (mirrored) for 200 "
         "images\n");
}

static void expect_rejected(const char *what, augment_settings s, const char *needle) {
  char why[200] = "";
  FP_CHECK(!augment_settings_check(&s, why, sizeof why), "%s: accepted", what);
  FP_CHECK(strstr(why, needle) != NULL, "%s: message '%s' lacks '%s'", what, why, needle);
}

static void test_presets_and_checks(void) {
  augment_settings s;
  char why[200];
  FP_CHECK(!augment_preset("most", &s), "unknown preset accepted");
  const char *presets[] = {"none", "flip", "all"};
  const double flips[] = {0, 0.5, 0.5}, others[] = {0, 0, 1};
  for (int k = 0; k < 3; k++) {
    FP_CHECK(augment_preset(presets[k], &s), "preset %s refused", presets[k]);
    FP_CHECK(augment_settings_check(&s, why, sizeof why), "preset %s: %s", presets[k], why);
    FP_CHECK(s.flip == flips[k], "preset %s: flip %g", presets[k], s.flip);
    for (int t = ROTATE; t < TRANSFORMS; t++)
      FP_CHECK(*probability(&s, t) == others[k], "preset %s: %s %g", presets[k], names[t],
               *probability(&s, t));
    FP_CHECK(s.rotate_degrees == 10 && s.zoom_min == 0.7 && s.zoom_max == 1.3 &&
                 s.shift_fraction == 0.1 && s.brightness_range == 0.2 && s.contrast_range == 0.2,
             "preset %s: ranges", presets[k]);
  }
  augment_preset("flip", &s);
  augment_settings bad = s;
  bad.flip = 1.5;
  expect_rejected("flip 1.5", bad, "augment.flip");
  bad = s;
  bad.contrast = -0.1;
  expect_rejected("contrast -0.1", bad, "augment.contrast");
  bad = s;
  bad.rotate = NAN;
  expect_rejected("rotate NaN", bad, "augment.rotate");
  bad = s;
  bad.zoom_min = 0;
  expect_rejected("zoom_min 0", bad, "augment.zoom_min");
  bad = s;
  bad.zoom_max = 0.9;
  expect_rejected("zoom_max 0.9", bad, "augment.zoom_max");
  bad = s;
  bad.rotate_degrees = 181;
  expect_rejected("rotate_degrees 181", bad, "augment.rotate_degrees");
  bad = s;
  bad.shift_fraction = 2;
  expect_rejected("shift_fraction 2", bad, "augment.shift_fraction");
}

int main(void) {
  test_presets_and_checks();
  test_probabilities();
  test_independence();
  test_all_preset_is_the_old_behaviour();
  test_identity();
  printf("augment ok\n");
  return 0;
}
