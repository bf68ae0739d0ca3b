/* What the Extended U-Net's branches learn from, derived from a batch's label masks, and the
 * class branch's dropout draw: one definition each, used by train, evaluate and the tests (the
 * PyTorch twin, tests/twin/unet_twin.py, mirrors both). */
#ifndef FP_BRANCH_TARGETS_H
#define FP_BRANCH_TARGETS_H

#include <stddef.h>
#include <stdint.h>

/* boxes[k*4 .. k*4+3] = y0, x0, y1, x1 of class k's pixels, with y1 and x1 exclusive
 * (y0 <= y < y1); all four -1 for a class with no pixel. Labels >= classes (255 = ignore) are
 * skipped. */
void mask_class_boxes(const uint8_t *mask, int h, int w, int classes, int32_t *boxes);

/* For each of n masks [h,w]: presence[i*classes + k] = 1 when class k has a pixel, else 0;
 * boxes[(i*classes + k)*4 ..] = y0/h, x0/w, y1/h, x1/w of its pixels (relative, in [0,1]),
 * 0 where absent. Every class counts, background included. Returns the number of present
 * (image, class) pairs. */
size_t branch_targets_from_masks(const uint8_t *masks, int n, int h, int w, int classes,
                                 float *presence, float *boxes);

/* The targets of a training batch whose images may come from a tag-only file (photos with
 * image-level tags and no mask; their masks are all the ignore label): the targets of
 * branch_targets_from_masks, except that a tag-only image's class presence is its tags
 * (tags[i*classes + k], 0/1). box_mask[i*classes + k] = 1 where the box loss counts, i.e. where
 * the mask has pixels of class k: never for a tag-only image, whose boxes stay 0. tags and
 * tag_only may be NULL (no tag-only image). Returns the number of boxes counted. */
size_t branch_targets_from_batch(const uint8_t *masks, const uint8_t *tags, const uint8_t *tag_only,
                                 int n, int h, int w, int classes, float *presence, float *boxes,
                                 float *box_mask);

/* Dropout's keep mask for `samples` rows of `units` activations, rows first_sample.. of the
 * global batch of optimiser step `step`: mask = 1/(1-p) where kept, 0 where dropped. Element
 * (sample s, unit u) is dropped when u64_to_unit(mix(mix(mix(seed) + step) + s*units + u)) < p,
 * mix being splitmix64's finaliser and u64_to_unit(z) = (z >> 11) * 2^-53: the same mask on
 * every backend, for any split of the global batch over ranks, and after a resume. */
void dropout_keep_mask(uint64_t seed, uint64_t step, long first_sample, int samples, int units,
                       float p, float *mask);

#endif
