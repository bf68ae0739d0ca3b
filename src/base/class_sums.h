/* The layout of the per-image, per-class sums behind parse_catalog's statistics: what a
 * backend's class_statistics op writes (backend.h) and catalog_stats_from_sums reads
 * (io/catalog/catalog_stats.h). One row of CLASS_SUMS doubles per image and class. */
#ifndef FP_CLASS_SUMS_H
#define FP_CLASS_SUMS_H

enum class_sum {
  CLASS_SUM_PIXELS,     /* pixels predicted as the class inside the photo's box */
  CLASS_SUM_CONFIDENCE, /* the sum of their confidence (softmax probability of the class) */
  CLASS_SUM_LINEAR_R,   /* the sums of their colour, each channel in linear RGB */
  CLASS_SUM_LINEAR_G,
  CLASS_SUM_LINEAR_B,
  CLASS_SUM_TOP,  /* their extent, half-open: rows [top, bottom), columns [left, right) */
  CLASS_SUM_LEFT, /* (all four 0 when the class is absent) */
  CLASS_SUM_BOTTOM,
  CLASS_SUM_RIGHT,
  CLASS_SUMS
};

#endif
