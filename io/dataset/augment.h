/* Training augmentation: one affine warp (horizontal flip, rotation, shift,
 * zoom) applied identically to photo and mask, then brightness/contrast on
 * the photo. Each of the six transforms is applied to an image with its own
 * probability and drawn from its own range (augment_settings). The random draws
 * come from a counter-based hash of (seed, epoch, dataset index), so an image
 * is augmented the same way whatever the thread, rank count or batch it lands
 * in. A transform that is not applied leaves its parameter neutral (no flip,
 * angle 0, zoom 1, shift 0, multipliers 1), and neutral parameters reproduce
 * the input exactly: with every probability 0 the result is bit-identical to
 * no augmentation. */
#ifndef FP_AUGMENT_H
#define FP_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

/* Probabilities are in [0, 1]; ranges as noted. The job file's [augment] keys. */
typedef struct augment_settings {
  double flip;             /* probability of a left-right mirror */
  double rotate;           /* probability of a rotation ... */
  double rotate_degrees;   /* ... by a uniform angle in [-d, d] degrees, d in [0, 180] */
  double zoom;             /* probability of a zoom ... */
  double zoom_min;         /* ... by a uniform factor in [zoom_min, zoom_max], */
  double zoom_max;         /*     0 < zoom_min <= 1 <= zoom_max (> 1 enlarges) */
  double shift;            /* probability of a shift ... */
  double shift_fraction;   /* ... by uniform [-f, f] of the height and, independently, the
                              width, f in [0, 1] */
  double brightness;       /* probability of a brightness change ... */
  double brightness_range; /* ... by a multiplier uniform in [1 - r, 1 + r], r in [0, 1] */
  double contrast;         /* probability of a contrast change ... */
  double contrast_range;   /* ... by a multiplier about mid-grey in [1 - r, 1 + r], r in [0, 1] */
} augment_settings;

/* The presets' names, '|'-separated (the job file's augment.preset). */
#define AUGMENT_PRESET_WORDS "none|flip|all"
/* Fills s with a preset: every range at its default (rotate 10 degrees, zoom 0.7..1.3, shift
 * 0.1, brightness and contrast 0.2) and the probabilities of the preset: "none" all 0; "flip"
 * (the default) flip 0.5, the rest 0; "all" flip 0.5 and the rest 1, which draws exactly what
 * the augmentation did before it had settings. Returns 0 for an unknown name. */
int augment_preset(const char *name, augment_settings *s);
/* 1 if every field is in its range; else 0 with a message naming the field in why. */
int augment_settings_check(const augment_settings *s, char *why, size_t cap);

typedef struct augment_params {
  int flip;       /* mirror left-right */
  double angle;   /* radians */
  double zoom;    /* scale factor, 1 = none */
  double shift_y; /* pixels */
  double shift_x;
  double brightness; /* multiplier, 1 = none */
  double contrast;   /* multiplier around mid-grey, 1 = none */
} augment_params;

augment_params augment_draw(const augment_settings *s, uint64_t seed, int epoch, int64_t index,
                            int height, int width);

/* photo [H,W,3] uint8 -> photo_chw [3,H,W] floats in 0..1 (bilinear, 0
 * outside the source); mask [H,W] -> mask_out (nearest, 255 outside). Without
 * rotation, zoom or shift the pixels are copied (mirrored with flip), and
 * without brightness or contrast change the colours are photo/255 exactly. */
void augment_apply(const augment_params *p, const uint8_t *photo, const uint8_t *mask, int height,
                   int width, float *photo_chw, uint8_t *mask_out);

#endif
