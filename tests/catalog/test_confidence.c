/* The backend's argmax_channels with its confidence output (the softmax probability of the
 * argmax class) on a few shapes and on f32 and bf16 logits, for confidence_numpy.py to check
 * against numpy. Writes, per case, a file of int32 n, c, h, w, dtype (0 f32, 1 bf16), then the
 * logits as float32 NCHW (after rounding to the dtype), the predictions as uint8 [N,H,W] and the
 * confidences as float32 [N,H,W].
 * Usage: test_confidence OUT_DIR */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "check.h"
#include "rng.h"
#include "test_backend.h"

static void run_case(const backend *be, const char *directory, int index, fp_dtype type, int n,
                     int c, int h, int w) {
  tensor logits = tensor_shape(type, n, c, h, w);
  size_t count = tensor_count(&logits), pixels = (size_t)n * h * w;
  be->tensor_alloc(&logits);
  float *host = fp_malloc(count * sizeof *host), *confidence = fp_malloc(pixels * sizeof *host);
  uint8_t *predictions = fp_malloc(pixels);
  rng r;
  rng_seed(&r, 100 + (uint64_t)index);
  for (size_t i = 0; i < count; i++) host[i] = (float)(8.0 * rng_normal(&r));
  /* As the category prior does: channel 1 of image 0 is ruled out entirely. */
  for (int i = 0; i < h * w; i++) host[(size_t)h * w + i] = -INFINITY;
  /* A tie: pixel 0 of image 0 has its largest logit twice (the first one wins). */
  host[0] = host[2 * (size_t)h * w] = 100.0f;
  be->tensor_from_nchw(&logits, host);
  be->tensor_to_nchw(&logits, host); /* the values as stored (rounded to bf16) */
  uint8_t *device_predictions = be->alloc(FP_U8, pixels);
  float *device_confidence = be->alloc(FP_F32, pixels);
  be->argmax_channels(&logits, device_predictions, device_confidence);
  be->download(predictions, device_predictions, FP_U8, pixels);
  be->download(confidence, device_confidence, FP_F32, pixels);
  char path[4096];
  snprintf(path, sizeof path, "%s/confidence_%d.bin", directory, index);
  FILE *f = fopen(path, "wb");
  FP_CHECK(f, "cannot create %s", path);
  int header[5] = {n, c, h, w, type == FP_BF16};
  FP_CHECK(fwrite(header, sizeof header, 1, f) == 1 &&
               fwrite(host, sizeof *host, count, f) == count &&
               fwrite(predictions, 1, pixels, f) == pixels &&
               fwrite(confidence, sizeof *confidence, pixels, f) == pixels && fclose(f) == 0,
           "cannot write %s", path);
  be->tensor_release(&logits);
  be->release(device_predictions);
  be->release(device_confidence);
  free(host);
  free(confidence);
  free(predictions);
}

int main(int argc, char **argv) {
  FP_CHECK(argc == 2, "usage: test_confidence OUT_DIR");
  const backend *be = test_backend();
  run_case(be, argv[1], 0, FP_F32, 2, 59, 7, 5); /* 59 channels: stored plain NCHW */
  run_case(be, argv[1], 1, FP_F32, 3, 16, 4, 6); /* 16 channels: stored channel-blocked */
  run_case(be, argv[1], 2, FP_F32, 1, 14, 48, 32);
  /* planes of 143 pixels: the CPU backend's tiles of 64 neighbouring pixels end mid-plane */
  run_case(be, argv[1], 3, FP_F32, 2, 21, 13, 11);
  char why[200];
  int cases = 4;
  if (be->dtype_support(FP_BF16, why, sizeof why) != DTYPE_NOT_NATIVE) {
    run_case(be, argv[1], 4, FP_BF16, 2, 59, 7, 5);
    run_case(be, argv[1], 5, FP_BF16, 2, 59, 9, 11);
    cases += 2;
  }
  printf("wrote %d cases to %s\n", cases, argv[1]);
  return 0;
}
