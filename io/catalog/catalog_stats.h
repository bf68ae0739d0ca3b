/* Per-image, per-class statistics of a prediction (docs/parse_catalog.md):
 * over the photo's pixels at model resolution (the letterbox box; padding is
 * not part of the photo), for each class k:
 *   pixel_fraction   pixels predicted k / photo pixels (sums to 1 over k)
 *   bbox             [y0, x0, y1, x1) of those pixels, half-open; -1s when absent
 *   mean_confidence  mean softmax probability of k over those pixels
 *   mean_rgb         their mean colour (averaged in linear RGB) as sRGB 0..255
 *   mean_lab         the same colour in CIELAB (D65)
 *   colour           index of the nearest palette colour (CIEDE2000), 255 when absent
 * Means of an absent class are NaN. */
#ifndef FP_CATALOG_STATS_H
#define FP_CATALOG_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "class_sums.h"
#include "resize.h"

#define CATALOG_MASK_OUTSIDE 255 /* mask value of pixels outside the photo */
#define CATALOG_NO_COLOUR 255

typedef struct image_stats {
  float *pixel_fraction;  /* [K] */
  int16_t *bbox;          /* [K][4] */
  float *mean_confidence; /* [K] */
  float *mean_rgb;        /* [K][3] */
  float *mean_lab;        /* [K][3] */
  uint8_t *colour;        /* [K] */
} image_stats;

/* The statistics of one image from its per-class sums (class_sums.h: [classes][CLASS_SUMS],
 * what the backend's class_statistics op adds up over the pixels inside the box). */
void catalog_stats_from_sums(const double *sums, int classes, const letterbox *box,
                             image_stats *out);

/* The linear-RGB value of each sRGB byte, the table class_statistics reads: table [256]. */
void catalog_linear_table(float *table);

/* The model-resolution mask mapped back onto the photo's own pixels (nearest:
 * photo pixel (y, x) takes the mask at (offset_y + floor((y + 0.5) *
 * resized_h / source_height), same for x)), written into the top-left
 * source_height x source_width of out [out_height][out_width], the rest
 * CATALOG_MASK_OUTSIDE. */
void catalog_mask_to_source(const uint8_t *mask, int height, int width, const letterbox *box,
                            int source_height, int source_width, uint8_t *out, int out_height,
                            int out_width);

#endif
