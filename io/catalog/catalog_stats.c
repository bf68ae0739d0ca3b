#include "catalog_stats.h"

#include <math.h>
#include <string.h>

#include "check.h"
#include "colour.h"

void catalog_linear_table(float *table) {
  for (int v = 0; v < 256; v++) table[v] = colour_srgb_to_linear((uint8_t)v);
}

void catalog_stats_from_sums(const double *sums, int classes, const letterbox *box,
                             image_stats *out) {
  const double photo_pixels = (double)box->resized_h * box->resized_w;
  for (int k = 0; k < classes; k++) {
    const double *row = sums + (size_t)k * CLASS_SUMS;
    const double count = row[CLASS_SUM_PIXELS];
    out->pixel_fraction[k] = (float)(count / photo_pixels);
    if (count == 0.0) {
      for (int i = 0; i < 4; i++) out->bbox[k * 4 + i] = -1;
      out->mean_confidence[k] = NAN;
      for (int c = 0; c < 3; c++) out->mean_rgb[k * 3 + c] = out->mean_lab[k * 3 + c] = NAN;
      out->colour[k] = CATALOG_NO_COLOUR;
      continue;
    }
    int16_t corners[4] = {(int16_t)row[CLASS_SUM_TOP], (int16_t)row[CLASS_SUM_LEFT],
                          (int16_t)row[CLASS_SUM_BOTTOM], (int16_t)row[CLASS_SUM_RIGHT]};
    memcpy(&out->bbox[k * 4], corners, sizeof corners);
    out->mean_confidence[k] = (float)(row[CLASS_SUM_CONFIDENCE] / count);
    double linear[3], lab[3];
    for (int c = 0; c < 3; c++) {
      linear[c] = row[CLASS_SUM_LINEAR_R + c] / count;
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
