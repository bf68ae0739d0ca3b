#include "normalise.h"

static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};

void image_normalise_hwc(const uint8_t *photo, size_t plane, float *chw) {
  for (int c = 0; c < 3; c++)
    for (size_t o = 0; o < plane; o++)
      chw[c * plane + o] = (photo[o * 3 + c] / 255.0f - imagenet_mean[c]) / imagenet_std[c];
}

void image_normalise_chw(float *chw, size_t plane) {
  for (int c = 0; c < 3; c++)
    for (size_t o = 0; o < plane; o++)
      chw[c * plane + o] = (chw[c * plane + o] - imagenet_mean[c]) / imagenet_std[c];
}
