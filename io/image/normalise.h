/* The model's input normalisation: RGB scaled to [0,1], minus the ImageNet mean, over the
 * ImageNet standard deviation, per channel. The one definition that training (io/dataset/loader.c)
 * and inference (parse_catalog) both use. */
#ifndef FP_NORMALISE_H
#define FP_NORMALISE_H

#include <stddef.h>
#include <stdint.h>

/* HWC uint8 RGB of `plane` pixels -> normalised CHW floats */
void image_normalise_hwc(const uint8_t *photo, size_t plane, float *chw);
/* CHW floats in [0,1] (e.g. after augmentation), normalised in place */
void image_normalise_chw(float *chw, size_t plane);

#endif
