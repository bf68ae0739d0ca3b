/* Training augmentation: one affine warp (horizontal flip, rotation, shift,
 * zoom) applied identically to photo and mask, then brightness/contrast on
 * the photo. The random draws come from a counter-based hash of (seed,
 * epoch, dataset index), so an image is augmented the same way whatever the
 * thread, rank count or batch it lands in. */
#ifndef FP_AUGMENT_H
#define FP_AUGMENT_H

#include <stdint.h>

typedef struct augment_params {
  int flip;       /* mirror left-right */
  double angle;   /* radians, |angle| <= 10 degrees */
  double zoom;    /* 0.7 .. 1.3 */
  double shift_y; /* pixels, |shift| <= 10% of the side */
  double shift_x;
  double brightness; /* multiplier 0.8 .. 1.2 */
  double contrast;   /* multiplier around mid-grey 0.8 .. 1.2 */
} augment_params;

augment_params augment_draw(uint64_t seed, int epoch, int64_t index, int height, int width);

/* photo [H,W,3] uint8 -> photo_chw [3,H,W] floats in 0..1 (bilinear, 0
 * outside the source); mask [H,W] -> mask_out (nearest, 255 outside). */
void augment_apply(const augment_params *p, const uint8_t *photo, const uint8_t *mask, int height,
                   int width, float *photo_chw, uint8_t *mask_out);

#endif
