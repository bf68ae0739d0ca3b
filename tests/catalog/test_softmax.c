/* The backend's softmax_channels on a few shapes, for softmax_numpy.py to check
 * against numpy. Writes, per case, a file of int32 n, c, h, w, then the logits
 * and the probabilities as float32, NCHW.
 * Usage: test_softmax OUT_DIR */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "check.h"
#include "rng.h"
#include "test_backend.h"

static void run_case(const backend *be, const char *directory, int index, int n, int c, int h,
                     int w) {
  tensor logits = tensor_shape(FP_F32, n, c, h, w), probabilities = logits;
  size_t count = tensor_count(&logits);
  be->tensor_alloc(&logits);
  be->tensor_alloc(&probabilities);
  float *host = fp_malloc(count * sizeof *host), *result = fp_malloc(count * sizeof *result);
  rng r;
  rng_seed(&r, 100 + (uint64_t)index);
  for (size_t i = 0; i < count; i++) host[i] = (float)(8.0 * rng_normal(&r));
  /* As the category prior does: channel 1 of image 0 is ruled out entirely. */
  for (int i = 0; i < h * w; i++) host[(size_t)h * w + i] = -INFINITY;
  be->tensor_from_nchw(&logits, host);
  be->softmax_channels(&logits, &probabilities);
  be->tensor_to_nchw(&probabilities, result);
  char path[4096];
  snprintf(path, sizeof path, "%s/softmax_%d.bin", directory, index);
  FILE *f = fopen(path, "wb");
  FP_CHECK(f, "cannot create %s", path);
  int shape[4] = {n, c, h, w};
  FP_CHECK(fwrite(shape, sizeof shape, 1, f) == 1 &&
               fwrite(host, sizeof *host, count, f) == count &&
               fwrite(result, sizeof *result, count, f) == count && fclose(f) == 0,
           "cannot write %s", path);
  be->tensor_release(&logits);
  be->tensor_release(&probabilities);
  free(host);
  free(result);
}

int main(int argc, char **argv) {
  FP_CHECK(argc == 2, "usage: test_softmax OUT_DIR");
  const backend *be = test_backend();
  run_case(be, argv[1], 0, 2, 59, 7, 5); /* 59 channels: stored plain NCHW */
  run_case(be, argv[1], 1, 3, 16, 4, 6); /* 16 channels: stored channel-blocked */
  run_case(be, argv[1], 2, 1, 14, 48, 32);
  printf("wrote 3 cases to %s\n", argv[1]);
  int reference = be->reference_primitive_count();
  FP_CHECK(reference == 0, "%d softmax primitives fell back to oneDNN's reference code", reference);
  return 0;
}
