/* The class_statistics op (backend.h, class_sums.h) on $FP_TEST_BACKEND against a plain host
 * loop: 3 images of 13x17 pixels, 7 classes (class 6 never predicted), random predictions,
 * confidences and colours; image 0's box is the whole image, image 1's an inner box with
 * odd edges, image 2's empty (an unused place of a batch). Every prediction outside a box must
 * become the outside label and those inside stay; pixel counts and extents must be exact,
 * the double sums (confidence, linear RGB) within 1e-12 relative (a device adds them in
 * another order). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "class_sums.h"
#include "rng.h"
#include "test_backend.h"

enum { BATCH = 3, H = 13, W = 17, CLASSES = 7, OUTSIDE = 255 };
#define PLANE ((size_t)H * W)

static void reference_sums(const uint8_t *predictions, const float *confidence,
                           const uint8_t *photos, const float *boxes, const float *linear,
                           uint8_t *masks, double *sums) {
  memset(sums, 0, sizeof(double) * BATCH * CLASSES * CLASS_SUMS);
  for (int b = 0; b < BATCH; b++) {
    const float *box = boxes + b * 4;
    for (int k = 0; k < CLASSES; k++) {
      double *row = sums + ((size_t)b * CLASSES + k) * CLASS_SUMS;
      row[CLASS_SUM_TOP] = row[CLASS_SUM_LEFT] = INFINITY;
    }
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        size_t p = b * PLANE + (size_t)y * W + x;
        masks[p] = predictions[p];
        if (y < box[0] || x < box[1] || y >= box[2] || x >= box[3]) {
          masks[p] = OUTSIDE;
          continue;
        }
        double *row = sums + ((size_t)b * CLASSES + predictions[p]) * CLASS_SUMS;
        row[CLASS_SUM_PIXELS] += 1;
        row[CLASS_SUM_CONFIDENCE] += confidence[p];
        for (int c = 0; c < 3; c++) row[CLASS_SUM_LINEAR_R + c] += linear[photos[p * 3 + c]];
        row[CLASS_SUM_TOP] = fmin(row[CLASS_SUM_TOP], y);
        row[CLASS_SUM_LEFT] = fmin(row[CLASS_SUM_LEFT], x);
        row[CLASS_SUM_BOTTOM] = fmax(row[CLASS_SUM_BOTTOM], y + 1);
        row[CLASS_SUM_RIGHT] = fmax(row[CLASS_SUM_RIGHT], x + 1);
      }
    for (int k = 0; k < CLASSES; k++) {
      double *row = sums + ((size_t)b * CLASSES + k) * CLASS_SUMS;
      if (row[CLASS_SUM_PIXELS] == 0) row[CLASS_SUM_TOP] = row[CLASS_SUM_LEFT] = 0;
    }
  }
}

int main(void) {
  const backend *be = test_backend();
  const size_t pixels = BATCH * PLANE, rows = (size_t)BATCH * CLASSES * CLASS_SUMS;
  uint8_t predictions[BATCH * H * W], photos[BATCH * H * W * 3], want_masks[BATCH * H * W],
      got_masks[BATCH * H * W];
  float confidence[BATCH * H * W], linear[256];
  const float boxes[BATCH * 4] = {0, 0, H, W, 2, 3, 11, 14, 0, 0, 0, 0};
  double want[BATCH * CLASSES * CLASS_SUMS], got[BATCH * CLASSES * CLASS_SUMS];
  rng r;
  rng_seed(&r, 5);
  for (size_t p = 0; p < pixels; p++) {
    predictions[p] = (uint8_t)(rng_next(&r) % (CLASSES - 1));
    confidence[p] = (float)(0.2 + 0.8 * rng_uniform(&r));
    for (int c = 0; c < 3; c++) photos[p * 3 + c] = (uint8_t)(rng_next(&r) % 256);
  }
  for (int v = 0; v < 256; v++) linear[v] = powf(v / 255.0f, 2.2f);
  reference_sums(predictions, confidence, photos, boxes, linear, want_masks, want);

  uint8_t *d_predictions = be->alloc(FP_U8, pixels), *d_photos = be->alloc(FP_U8, pixels * 3);
  float *d_confidence = be->alloc(FP_F32, pixels), *d_boxes = be->alloc(FP_F32, BATCH * 4);
  float *d_linear = be->alloc(FP_F32, 256);
  double *d_sums = be->alloc(FP_F64, rows);
  be->upload(d_predictions, predictions, FP_U8, pixels);
  be->upload(d_photos, photos, FP_U8, pixels * 3);
  be->upload(d_confidence, confidence, FP_F32, pixels);
  be->upload(d_boxes, boxes, FP_F32, BATCH * 4);
  be->upload(d_linear, linear, FP_F32, 256);
  be->class_statistics(d_predictions, d_confidence, d_photos, d_boxes, d_linear, BATCH, H, W,
                       CLASSES, OUTSIDE, d_sums);
  be->download(got_masks, d_predictions, FP_U8, pixels);
  be->download(got, d_sums, FP_F64, rows);

  int failures = 0;
  if (memcmp(got_masks, want_masks, pixels)) {
    printf("FAIL: predictions outside the boxes not the outside label, or inside changed\n");
    failures++;
  }
  for (size_t i = 0; i < rows; i++) {
    int field = (int)(i % CLASS_SUMS);
    int exact = field == CLASS_SUM_PIXELS || field >= CLASS_SUM_TOP;
    double error = fabs(got[i] - want[i]) / fmax(fabs(want[i]), 1e-300);
    if (exact ? got[i] != want[i] : error > 1e-12) {
      printf("FAIL: image %zu class %zu sum %d: %.17g, want %.17g\n", i / CLASS_SUMS / CLASSES,
             i / CLASS_SUMS % CLASSES, field, got[i], want[i]);
      failures++;
    }
  }
  double inner = want[(1 * CLASSES + 0) * CLASS_SUMS + CLASS_SUM_PIXELS];
  printf("%s: class sums of %d images (%g pixels of class 0 in the inner box) on %s\n",
         failures ? "FAIL" : "ok", BATCH, inner, be->name);
  be->release(d_predictions);
  be->release(d_photos);
  be->release(d_confidence);
  be->release(d_boxes);
  be->release(d_linear);
  be->release(d_sums);
  return failures ? 1 : 0;
}
