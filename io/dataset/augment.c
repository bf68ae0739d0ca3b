#include "augment.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "shard.h"

#define AUGMENT_STREAM 0x4155474dULL /* "AUGM": keeps these draws apart from the shuffle's */

/* The draw numbers within an image's stream. The value draws 1..6 and the flip's draw 0 are
 * those the augmentation used before it had settings, so the "all" preset (the old behaviour)
 * draws the same parameters; whether a transform is applied at all is drawn separately, so a
 * transform's probability changes no other transform's parameters. */
enum {
  DRAW_FLIP = 0,
  DRAW_ANGLE = 1,
  DRAW_ZOOM = 2,
  DRAW_SHIFT_Y = 3,
  DRAW_SHIFT_X = 4,
  DRAW_BRIGHTNESS = 5,
  DRAW_CONTRAST = 6,
  DRAW_ROTATE_ON = 7,
  DRAW_ZOOM_ON = 8,
  DRAW_SHIFT_ON = 9,
  DRAW_BRIGHTNESS_ON = 10,
  DRAW_CONTRAST_ON = 11,
};

int augment_preset(const char *name, augment_settings *s) {
  if (strcmp(name, "none") && strcmp(name, "flip") && strcmp(name, "all")) return 0;
  double on = !strcmp(name, "all");
  s->flip = strcmp(name, "none") ? 0.5 : 0;
  s->rotate = s->zoom = s->shift = s->brightness = s->contrast = on;
  s->rotate_degrees = 10;
  s->zoom_min = 0.7;
  s->zoom_max = 1.3;
  s->shift_fraction = 0.1;
  s->brightness_range = 0.2;
  s->contrast_range = 0.2;
  return 1;
}

int augment_settings_check(const augment_settings *s, char *why, size_t cap) {
  const struct {
    const char *name;
    double value, low, high;
    int low_open; /* low itself is not allowed */
  } fields[] = {
      {"flip", s->flip, 0, 1, 0},
      {"rotate", s->rotate, 0, 1, 0},
      {"rotate_degrees", s->rotate_degrees, 0, 180, 0},
      {"zoom", s->zoom, 0, 1, 0},
      {"zoom_min", s->zoom_min, 0, 1, 1},
      {"zoom_max", s->zoom_max, 1, 10, 0},
      {"shift", s->shift, 0, 1, 0},
      {"shift_fraction", s->shift_fraction, 0, 1, 0},
      {"brightness", s->brightness, 0, 1, 0},
      {"brightness_range", s->brightness_range, 0, 1, 0},
      {"contrast", s->contrast, 0, 1, 0},
      {"contrast_range", s->contrast_range, 0, 1, 0},
  };
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    double value = fields[i].value, low = fields[i].low, high = fields[i].high;
    int open = fields[i].low_open;
    if (!(value >= low && value <= high) || (open && value == low)) { /* NaN fails too */
      snprintf(why, cap, "augment.%s = %g is outside %c%g, %g]", fields[i].name, value,
               open ? '(' : '[', low, high);
      return 0;
    }
  }
  return 1;
}

static double uniform_draw(uint64_t seed, int epoch, int64_t index, int draw) {
  uint64_t counter = ((uint64_t)(uint32_t)epoch << 32) | (uint64_t)draw;
  return shard_uniform(seed, AUGMENT_STREAM, counter, (uint64_t)index);
}

static double uniform_between(uint64_t seed, int epoch, int64_t index, int draw, double low,
                              double high) {
  return low + (high - low) * uniform_draw(seed, epoch, index, draw);
}

/* Whether a transform of probability p is applied: never for 0, always for 1 (draws are in
 * [0, 1)). */
static int happens(uint64_t seed, int epoch, int64_t index, int draw, double p) {
  return uniform_draw(seed, epoch, index, draw) < p;
}

augment_params augment_draw(const augment_settings *s, uint64_t seed, int epoch, int64_t index,
                            int height, int width) {
  augment_params p = {0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0};
  p.flip = happens(seed, epoch, index, DRAW_FLIP, s->flip);
  if (happens(seed, epoch, index, DRAW_ROTATE_ON, s->rotate)) {
    double max_angle = s->rotate_degrees * 3.14159265358979323846 / 180.0;
    p.angle = uniform_between(seed, epoch, index, DRAW_ANGLE, -max_angle, max_angle);
  }
  if (happens(seed, epoch, index, DRAW_ZOOM_ON, s->zoom))
    p.zoom = uniform_between(seed, epoch, index, DRAW_ZOOM, s->zoom_min, s->zoom_max);
  if (happens(seed, epoch, index, DRAW_SHIFT_ON, s->shift)) {
    double f = s->shift_fraction;
    p.shift_y = uniform_between(seed, epoch, index, DRAW_SHIFT_Y, -f, f) * height;
    p.shift_x = uniform_between(seed, epoch, index, DRAW_SHIFT_X, -f, f) * width;
  }
  if (happens(seed, epoch, index, DRAW_BRIGHTNESS_ON, s->brightness))
    p.brightness = uniform_between(seed, epoch, index, DRAW_BRIGHTNESS, 1 - s->brightness_range,
                                   1 + s->brightness_range);
  if (happens(seed, epoch, index, DRAW_CONTRAST_ON, s->contrast))
    p.contrast = uniform_between(seed, epoch, index, DRAW_CONTRAST, 1 - s->contrast_range,
                                 1 + s->contrast_range);
  return p;
}

/* Bilinear sample of channel c at source pixel coordinate (sy, sx); pixels
 * outside the image count as 0, like grid_sample's zero padding. */
static float sample_bilinear(const uint8_t *photo, int height, int width, int c, double sy,
                             double sx) {
  int y0 = (int)floor(sy), x0 = (int)floor(sx);
  double wy = sy - y0, wx = sx - x0, sum = 0.0;
  for (int dy = 0; dy <= 1; dy++)
    for (int dx = 0; dx <= 1; dx++) {
      int y = y0 + dy, x = x0 + dx;
      if (y < 0 || y >= height || x < 0 || x >= width) continue;
      double weight = (dy ? wy : 1 - wy) * (dx ? wx : 1 - wx);
      sum += weight * photo[((size_t)y * width + x) * 3 + c];
    }
  return (float)sum;
}

static float colour_jitter(const augment_params *p, float value /* 0..1 */) {
  float v = (float)(((value - 0.5) * p->contrast + 0.5) * p->brightness);
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* No rotation, zoom or shift: every output pixel is one source pixel (mirrored with flip), which
 * is what the warp below computes too, here without the arithmetic. */
static void copy_or_mirror(const augment_params *p, const uint8_t *photo, const uint8_t *mask,
                           int height, int width, float *photo_chw, uint8_t *mask_out) {
  int colour = p->brightness != 1.0 || p->contrast != 1.0;
  size_t plane = (size_t)height * width;
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++) {
      size_t o = (size_t)y * width + x, s = (size_t)y * width + (p->flip ? width - 1 - x : x);
      for (int c = 0; c < 3; c++) {
        float value = photo[s * 3 + c] / 255.0f;
        photo_chw[c * plane + o] = colour ? colour_jitter(p, value) : value;
      }
      mask_out[o] = mask[s];
    }
}

void augment_apply(const augment_params *p, const uint8_t *photo, const uint8_t *mask, int height,
                   int width, float *photo_chw, uint8_t *mask_out) {
  if (p->angle == 0.0 && p->zoom == 1.0 && p->shift_x == 0.0 && p->shift_y == 0.0) {
    copy_or_mirror(p, photo, mask, height, width, photo_chw, mask_out);
    return;
  }
  /* Inverse map: output pixel centre -> source pixel centre, about the image centre. */
  double cy = height / 2.0, cx = width / 2.0;
  double cos_a = cos(p->angle) / p->zoom, sin_a = sin(p->angle) / p->zoom;
  size_t plane = (size_t)height * width;
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++) {
      double u = x + 0.5 - cx - p->shift_x, v = y + 0.5 - cy - p->shift_y;
      double su = cos_a * u + sin_a * v, sv = -sin_a * u + cos_a * v;
      if (p->flip) su = -su;
      double sx = su + cx - 0.5, sy = sv + cy - 0.5;
      size_t o = (size_t)y * width + x;
      for (int c = 0; c < 3; c++)
        photo_chw[c * plane + o] =
            colour_jitter(p, sample_bilinear(photo, height, width, c, sy, sx) / 255.0f);
      int ny = (int)floor(sy + 0.5), nx = (int)floor(sx + 0.5);
      mask_out[o] =
          ny >= 0 && ny < height && nx >= 0 && nx < width ? mask[(size_t)ny * width + nx] : 255;
    }
}
