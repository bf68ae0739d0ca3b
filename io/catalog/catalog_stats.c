#include "catalog_stats.h"

#include <math.h>
#include <string.h>

#include "check.h"
#include "colour.h"

enum { MAX_CLASSES = 256 };

void catalog_image_stats(uint8_t *mask, const float *confidence, const uint8_t *photo, int classes,
                         int height, int width, const letterbox *box, image_stats *out) {
  FP_CHECK(classes > 0 && classes < MAX_CLASSES, "image stats: %d classes", classes);
  int64_t count[MAX_CLASSES] = {0};
  double confidence_sum[MAX_CLASSES] = {0}, linear_sum[MAX_CLASSES][3] = {{0}};
  int y0[MAX_CLASSES], x0[MAX_CLASSES], y1[MAX_CLASSES], x1[MAX_CLASSES];
  for (int k = 0; k < classes; k++) {
    y0[k] = x0[k] = INT32_MAX;
    y1[k] = x1[k] = -1;
  }
  float linear_of[256];
  for (int v = 0; v < 256; v++) linear_of[v] = colour_srgb_to_linear((uint8_t)v);
  const int top = box->offset_y, bottom = box->offset_y + box->resized_h;
  const int left = box->offset_x, right = box->offset_x + box->resized_w;
  for (int y = 0; y < height; y++) {
    for (int x = 0; x < width; x++) {
      size_t p = (size_t)y * width + x;
      if (y < top || y >= bottom || x < left || x >= right) {
        mask[p] = CATALOG_MASK_OUTSIDE;
        continue;
      }
      int k = mask[p];
      FP_CHECK(k < classes, "image stats: class %d at pixel %zu of %d classes", k, p, classes);
      count[k]++;
      confidence_sum[k] += confidence[p];
      for (int c = 0; c < 3; c++) linear_sum[k][c] += linear_of[photo[p * 3 + c]];
      if (y < y0[k]) y0[k] = y;
      if (y + 1 > y1[k]) y1[k] = y + 1;
      if (x < x0[k]) x0[k] = x;
      if (x + 1 > x1[k]) x1[k] = x + 1;
    }
  }
  const double photo_pixels = (double)box->resized_h * box->resized_w;
  for (int k = 0; k < classes; k++) {
    out->pixel_fraction[k] = (float)(count[k] / photo_pixels);
    if (!count[k]) {
      for (int i = 0; i < 4; i++) out->bbox[k * 4 + i] = -1;
      out->mean_confidence[k] = NAN;
      for (int c = 0; c < 3; c++) out->mean_rgb[k * 3 + c] = out->mean_lab[k * 3 + c] = NAN;
      out->colour[k] = CATALOG_NO_COLOUR;
      continue;
    }
    int16_t corners[4] = {(int16_t)y0[k], (int16_t)x0[k], (int16_t)y1[k], (int16_t)x1[k]};
    memcpy(&out->bbox[k * 4], corners, sizeof corners);
    out->mean_confidence[k] = (float)(confidence_sum[k] / (double)count[k]);
    double linear[3], lab[3];
    for (int c = 0; c < 3; c++) {
      linear[c] = linear_sum[k][c] / (double)count[k];
      out->mean_rgb[k * 3 + c] = (float)colour_linear_to_srgb(linear[c]);
    }
    colour_linear_to_lab(linear, lab);
    for (int c = 0; c < 3; c++) out->mean_lab[k * 3 + c] = (float)lab[c];
    out->colour[k] = (uint8_t)colour_nearest(lab);
  }
}

void catalog_mask_to_source(const uint8_t *mask, int height, int width, const letterbox *box,
                            int source_height, int source_width, uint8_t *out, int out_height,
                            int out_width) {
  FP_CHECK(source_height <= out_height && source_width <= out_width,
           "source mask of %dx%d does not fit %dx%d", source_height, source_width, out_height,
           out_width);
  FP_CHECK(box->offset_y + box->resized_h <= height && box->offset_x + box->resized_w <= width,
           "letterbox box does not fit the %dx%d mask", height, width);
  memset(out, CATALOG_MASK_OUTSIDE, (size_t)out_height * out_width);
  for (int y = 0; y < source_height; y++) {
    int my = box->offset_y + (int)floor((y + 0.5) * box->resized_h / source_height);
    const uint8_t *row = mask + (size_t)my * width;
    uint8_t *target = out + (size_t)y * out_width;
    for (int x = 0; x < source_width; x++)
      target[x] = row[box->offset_x + (int)floor((x + 0.5) * box->resized_w / source_width)];
  }
}
