/* Per-class bounding boxes of a label mask (for the box branch). */
#ifndef FP_MASK_BOXES_H
#define FP_MASK_BOXES_H

#include <stdint.h>

/* boxes[k*4 .. k*4+3] = y0, x0, y1, x1 of class k's pixels, with y1 and x1
 * exclusive (y0 <= y < y1); all four -1 for a class with no pixel. Labels
 * >= num_classes (255 = ignore) are skipped. */
void mask_class_boxes(const uint8_t *mask, int h, int w, int num_classes, int32_t *boxes);

#endif
