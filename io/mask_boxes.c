#include "mask_boxes.h"

void mask_class_boxes(const uint8_t *mask, int h, int w, int num_classes, int32_t *boxes) {
  for (int k = 0; k < num_classes; k++)
    for (int j = 0; j < 4; j++) boxes[k * 4 + j] = -1;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      int k = mask[(long)y * w + x];
      if (k >= num_classes) continue;
      int32_t *box = boxes + k * 4;
      if (box[0] < 0) {
        box[0] = y;
        box[1] = x;
        box[2] = y + 1;
        box[3] = x + 1;
        continue;
      }
      if (x < box[1]) box[1] = x;
      if (y + 1 > box[2]) box[2] = y + 1;
      if (x + 1 > box[3]) box[3] = x + 1;
    }
}
