/* An inference-only model (no gradients, activations in a ring of shared buffers) computes,
 * bit for bit, what a training model computes in eval mode from the same weights, in every
 * precision the backend runs, for ResNet and VGG encoders and the Extended U-Net's injected
 * branches, over two batches in a row (no state may leak
 * from one to the next through the shared buffers); and its activations take less than half
 * of the training model's memory. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "rng.h"
#include "test_backend.h"
#include "unet.h"

static void eval_logits(unet *m, const float *input, float *logits) {
  m->be->tensor_from_nchw(&m->input, input);
  unet_forward(m, 0);
  m->be->tensor_to_nchw(&m->logits, logits);
}

static int check(const backend *be, unet_arch arch, fp_dtype compute, branch_config branches) {
  unet_config config = {.arch = arch,
                        .classes = 7,
                        .batch = 2,
                        .height = 96,
                        .width = 64,
                        .compute = compute,
                        .mode = UNET_TRAINING,
                        .branches = branches};
  unet *trainer = unet_create(be, &config, 3);
  config.mode = UNET_INFERENCE;
  unet *inferer = unet_create(be, &config, 99); /* other weights until copied */
  size_t input_count = tensor_count(&trainer->input), logit_count = tensor_count(&trainer->logits);
  float *inputs[2], *want[2], *got[2];
  rng r;
  rng_seed(&r, 5);
  for (int k = 0; k < 2; k++) {
    inputs[k] = fp_malloc(input_count * sizeof *inputs[k]);
    want[k] = fp_malloc(logit_count * sizeof *want[k]);
    got[k] = fp_malloc(logit_count * sizeof *got[k]);
    for (size_t i = 0; i < input_count; i++) inputs[k][i] = (float)rng_normal(&r);
  }
  /* BN running statistics as training leaves them, so that eval-mode BN does something */
  for (int k = 0; k < 2; k++) {
    be->tensor_from_nchw(&trainer->input, inputs[k]);
    unet_forward(trainer, 1);
  }
  be->copy(inferer->buffers, trainer->buffers, FP_F32, trainer->buffer_list.total);
  be->copy(inferer->params, trainer->params, FP_F32, trainer->param_list.total);
  unet_weights_changed(inferer);
  for (int k = 0; k < 2; k++) eval_logits(trainer, inputs[k], want[k]);
  for (int k = 0; k < 2; k++) eval_logits(inferer, inputs[k], got[k]);
  int failures = 0;
  double spread = 0.0; /* the output must depend on the input, or equality proves nothing */
  for (size_t i = 0; i < logit_count; i++) spread = fmax(spread, fabs(want[0][i] - want[1][i]));
  if (!(spread > 1e-3)) failures++;
  for (int k = 0; k < 2; k++)
    if (memcmp(want[k], got[k], logit_count * sizeof *got[k]) != 0) failures++;
  size_t train_bytes = unet_activation_bytes(trainer), infer_bytes = unet_activation_bytes(inferer);
  if (!(infer_bytes < train_bytes / 2)) failures++;
  printf("%s %s, branches %s: inference model's output %s the training model's eval output (2 "
         "batches); activations %.1f MB, training model's %.1f MB: %s\n",
         unet_arch_name(arch), fp_dtype_name(compute), branch_mode_name(branches.mode),
         failures ? "vs" : "equals", infer_bytes / 1e6, train_bytes / 1e6,
         failures ? "FAIL" : "ok");
  for (int k = 0; k < 2; k++) {
    free(inputs[k]);
    free(want[k]);
    free(got[k]);
  }
  unet_destroy(trainer);
  unet_destroy(inferer);
  return failures;
}

int main(void) {
  const backend *be = test_backend();
  int failures = 0;
  fp_dtype precisions[2] = {FP_F32, FP_BF16};
  for (int p = 0; p < 2; p++) {
    if (!test_precision_runs(be, precisions[p])) continue;
    const unet_arch archs[] = {UNET_R18, UNET_R34, UNET_VGG16, UNET_VGG19_BN};
    for (size_t a = 0; a < sizeof archs / sizeof *archs; a++)
      failures += check(be, archs[a], precisions[p], (branch_config){BRANCHES_NONE, 0, 0.0f});
    /* the Extended U-Net, injected into the deepest and the full-size decoder blocks */
    failures += check(be, UNET_R18, precisions[p], (branch_config){BRANCHES_INJECTED, 0x11, 0.25f});
  }
  printf("%s\n", failures ? "FAIL" : "ok");
  return failures ? 1 : 0;
}
