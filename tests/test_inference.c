/* An inference-only model (no gradients, activations in a ring of shared buffers, batch norm
 * folded into the convolutions) computes what a training model computes in eval mode from the
 * same weights (to the bounds below), in every precision the backend runs, for ResNet and VGG
 * encoders and the Extended U-Net's injected branches, over two batches in a row (no state may leak
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

/* max |a - b| / max |b| */
static double relative_error(const float *a, const float *b, size_t count) {
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < count; i++) {
    diff = fmax(diff, fabs((double)a[i] - b[i]));
    scale = fmax(scale, fabs((double)b[i]));
  }
  return diff / scale;
}

static unet *copy_of(const backend *be, const unet *from, unet_config config) {
  unet *m = unet_create(be, &config, 99); /* other weights until copied */
  be->copy(m->buffers, from->buffers, FP_F32, from->buffer_list.total);
  be->copy(m->params, from->params, FP_F32, from->param_list.total);
  unet_weights_changed(m);
  return m;
}

/* The inference model folds batch norm into the convolutions (unet.folded), which changes where
 * results round, not what is computed. In f32 that is below F32_FOLDING (observed: about 1e-6 of
 * the logits' range). In bf16 the folded weights round once where the eval model rounds the
 * weights and then the convolution's output before its batch norm: the folded model must be no
 * further from the f32 eval model's output than the bf16 eval model is (with BF16_SLACK for the
 * draw of the rounding), so folding costs nothing in accuracy. */
#define F32_FOLDING 2e-5
#define BF16_SLACK 1.25

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
  size_t input_count = tensor_count(&trainer->input), logit_count = tensor_count(&trainer->logits);
  float *inputs[2], *want[2], *got[2], *exact[2];
  rng r;
  rng_seed(&r, 5);
  for (int k = 0; k < 2; k++) {
    inputs[k] = fp_malloc(input_count * sizeof *inputs[k]);
    want[k] = fp_malloc(logit_count * sizeof *want[k]);
    got[k] = fp_malloc(logit_count * sizeof *got[k]);
    exact[k] = fp_malloc(logit_count * sizeof *exact[k]);
    for (size_t i = 0; i < input_count; i++) inputs[k][i] = (float)rng_normal(&r);
  }
  /* BN running statistics as training leaves them, so that eval-mode BN does something */
  for (int k = 0; k < 2; k++) {
    be->tensor_from_nchw(&trainer->input, inputs[k]);
    unet_forward(trainer, 1);
  }
  config.mode = UNET_INFERENCE;
  unet *inferer = copy_of(be, trainer, config);
  config.mode = UNET_TRAINING;
  config.compute = FP_F32;
  unet *reference = compute == FP_F32 ? trainer : copy_of(be, trainer, config);
  for (int k = 0; k < 2; k++) eval_logits(trainer, inputs[k], want[k]);
  for (int k = 0; k < 2; k++) eval_logits(inferer, inputs[k], got[k]);
  for (int k = 0; k < 2; k++) eval_logits(reference, inputs[k], exact[k]);
  int failures = 0;
  double spread = 0.0; /* the output must depend on the input, or closeness proves nothing */
  for (size_t i = 0; i < logit_count; i++) spread = fmax(spread, fabs(want[0][i] - want[1][i]));
  if (!(spread > 1e-3)) failures++;
  double folding = 0.0, folded_error = 0.0, eval_error = 0.0;
  for (int k = 0; k < 2; k++) {
    folding = fmax(folding, relative_error(got[k], want[k], logit_count));
    folded_error = fmax(folded_error, relative_error(got[k], exact[k], logit_count));
    eval_error = fmax(eval_error, relative_error(want[k], exact[k], logit_count));
  }
  if (compute == FP_F32 ? !(folding <= F32_FOLDING) : !(folded_error <= BF16_SLACK * eval_error))
    failures++;
  size_t train_bytes = unet_activation_bytes(trainer), infer_bytes = unet_activation_bytes(inferer);
  if (!(infer_bytes < train_bytes / 2)) failures++;
  printf("%s %s, branches %s, 2 batches: inference model vs the training model's eval output "
         "%.2e; from f32 eval: inference %.2e, eval %.2e; activations %.1f MB, training "
         "model's %.1f MB: %s\n",
         unet_arch_name(arch), fp_dtype_name(compute), branch_mode_name(branches.mode), folding,
         folded_error, eval_error, infer_bytes / 1e6, train_bytes / 1e6, failures ? "FAIL" : "ok");
  for (int k = 0; k < 2; k++) {
    free(inputs[k]);
    free(want[k]);
    free(got[k]);
    free(exact[k]);
  }
  if (reference != trainer) unet_destroy(reference);
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
