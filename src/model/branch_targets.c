#include "branch_targets.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

void mask_class_boxes(const uint8_t *mask, int h, int w, int classes, int32_t *boxes) {
  for (int k = 0; k < classes; k++)
    for (int j = 0; j < 4; j++) boxes[k * 4 + j] = -1;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      int k = mask[(long)y * w + x];
      if (k >= classes) continue;
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

size_t branch_targets_from_masks(const uint8_t *masks, int n, int h, int w, int classes,
                                 float *presence, float *boxes) {
  int32_t *pixels = fp_malloc((size_t)classes * 4 * sizeof *pixels);
  size_t present = 0;
  for (int i = 0; i < n; i++) {
    mask_class_boxes(masks + (size_t)i * h * w, h, w, classes, pixels);
    for (int k = 0; k < classes; k++) {
      const int32_t *box = pixels + 4 * k;
      float *target = boxes + ((size_t)i * classes + k) * 4;
      int here = box[0] >= 0;
      presence[(size_t)i * classes + k] = (float)here;
      present += (size_t)here;
      target[0] = here ? (float)box[0] / (float)h : 0.0f;
      target[1] = here ? (float)box[1] / (float)w : 0.0f;
      target[2] = here ? (float)box[2] / (float)h : 0.0f;
      target[3] = here ? (float)box[3] / (float)w : 0.0f;
    }
  }
  free(pixels);
  return present;
}

size_t branch_targets_from_batch(const uint8_t *masks, const uint8_t *tags, const uint8_t *tag_only,
                                 int n, int h, int w, int classes, float *presence, float *boxes,
                                 float *box_mask) {
  size_t present = branch_targets_from_masks(masks, n, h, w, classes, box_mask, boxes);
  size_t k = (size_t)n * classes;
  memcpy(presence, box_mask, k * sizeof *presence);
  for (int i = 0; tag_only && i < n; i++) {
    if (!tag_only[i]) continue;
    for (int c = 0; c < classes; c++) {
      size_t at = (size_t)i * classes + c;
      FP_CHECK(box_mask[at] == 0.0f, "image %d of the batch is tag-only but its mask has class %d",
               i, c);
      presence[at] = tags[at] ? 1.0f : 0.0f;
    }
  }
  return present;
}

static uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void dropout_keep_mask(uint64_t seed, uint64_t step, long first_sample, int samples, int units,
                       float p, float *mask) {
  FP_CHECK(p >= 0.0f && p < 1.0f, "dropout probability %g (0 <= p < 1)", p);
  const uint64_t base = mix(mix(seed) + step);
  const float kept = 1.0f / (1.0f - p);
  for (int s = 0; s < samples; s++)
    for (int u = 0; u < units; u++) {
      uint64_t element = (uint64_t)(first_sample + s) * (uint64_t)units + (uint64_t)u;
      double draw = (double)(mix(base + element) >> 11) * 0x1.0p-53;
      mask[(size_t)s * units + u] = draw < p ? 0.0f : kept;
    }
}
