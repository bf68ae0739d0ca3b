#include "augment.h"

#include <math.h>
#include <stddef.h>

#include "shard.h"

#define AUGMENT_STREAM 0x4155474dULL /* "AUGM": keeps these draws apart from the shuffle's */

static double uniform_between(uint64_t seed, int epoch, int64_t index, int draw, double low,
                              double high) {
  uint64_t counter = ((uint64_t)(uint32_t)epoch << 32) | (uint64_t)draw;
  return low + (high - low) * shard_uniform(seed, AUGMENT_STREAM, counter, (uint64_t)index);
}

augment_params augment_draw(uint64_t seed, int epoch, int64_t index, int height, int width) {
  const double max_angle = 10.0 * 3.14159265358979323846 / 180.0;
  augment_params p;
  p.flip = uniform_between(seed, epoch, index, 0, 0, 1) < 0.5;
  p.angle = uniform_between(seed, epoch, index, 1, -max_angle, max_angle);
  p.zoom = uniform_between(seed, epoch, index, 2, 0.7, 1.3);
  p.shift_y = uniform_between(seed, epoch, index, 3, -0.1, 0.1) * height;
  p.shift_x = uniform_between(seed, epoch, index, 4, -0.1, 0.1) * width;
  p.brightness = uniform_between(seed, epoch, index, 5, 0.8, 1.2);
  p.contrast = uniform_between(seed, epoch, index, 6, 0.8, 1.2);
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

void augment_apply(const augment_params *p, const uint8_t *photo, const uint8_t *mask, int height,
                   int width, float *photo_chw, uint8_t *mask_out) {
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
