/* An inference-only model (no gradients, activations in a ring of shared buffers, batch norm
 * folded into the convolutions) computes what a training model computes in eval mode from the
 * same weights (to the bounds below; unfolded, bit for bit), in every precision the backend
 * runs, for ResNet and VGG encoders and the Extended U-Net's injected branches, over two batches
 * in a row (no state may leak from one to the next through the shared buffers); and its
 * activations take less than half of the training model's memory. */
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
 * results round, not what is computed. In f32 that is below F32_FOLDING (observed: 3e-6 to
 * 8e-6 of the logits' range). In bf16 the folded weights round once where the eval model rounds
 * the weights and then the convolution's output before its batch norm: the folded model must be
 * no further from the f32 eval model's output than the bf16 eval model is (with BF16_SLACK for
 * the draw of the rounding), so folding costs nothing in accuracy. Unfolded (unet_config
 * .unfolded), the inference model runs the eval pass's ops: bit for bit its output. */
#define F32_FOLDING 2e-5
#define BF16_SLACK 1.25

/* the models compared, and their logits for each of the two batches */
enum { TRAINER, FOLDED, UNFOLDED, F32_TRAINER, MODELS };
typedef struct comparison {
  unet *models[MODELS];
  float *inputs[2], *logits[MODELS][2];
  size_t logit_count;
} comparison;

static void comparison_init(comparison *c, const backend *be, unet_config config) {
  rng r;
  rng_seed(&r, 5);
  unet *trainer = c->models[TRAINER] = unet_create(be, &config, 3);
  size_t input_count = tensor_count(&trainer->input);
  c->logit_count = tensor_count(&trainer->logits);
  for (int k = 0; k < 2; k++) {
    c->inputs[k] = fp_malloc(input_count * sizeof(float));
    for (size_t i = 0; i < input_count; i++) c->inputs[k][i] = (float)rng_normal(&r);
  }
  /* BN running statistics as training leaves them, so that eval-mode BN does something */
  for (int k = 0; k < 2; k++) {
    be->tensor_from_nchw(&trainer->input, c->inputs[k]);
    unet_forward(trainer, 1);
  }
  config.mode = UNET_INFERENCE;
  c->models[FOLDED] = copy_of(be, trainer, config);
  config.unfolded = 1;
  c->models[UNFOLDED] = copy_of(be, trainer, config);
  config.mode = UNET_TRAINING;
  config.compute = FP_F32;
  c->models[F32_TRAINER] = copy_of(be, trainer, config);
  for (int m = 0; m < MODELS; m++)
    for (int k = 0; k < 2; k++) {
      c->logits[m][k] = fp_malloc(c->logit_count * sizeof(float));
      eval_logits(c->models[m], c->inputs[k], c->logits[m][k]);
    }
}

static void comparison_release(comparison *c) {
  for (int k = 0; k < 2; k++) {
    free(c->inputs[k]);
    for (int m = 0; m < MODELS; m++) free(c->logits[m][k]);
  }
  for (int m = 0; m < MODELS; m++) unet_destroy(c->models[m]);
}

/* the larger relative_error over the two batches */
static double error_between(const comparison *c, int model, int reference) {
  double e = 0.0;
  for (int k = 0; k < 2; k++)
    e = fmax(e, relative_error(c->logits[model][k], c->logits[reference][k], c->logit_count));
  return e;
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
  comparison c;
  comparison_init(&c, be, config);
  int failures = 0;
  double spread = 0.0; /* the output must depend on the input, or closeness proves nothing */
  for (size_t i = 0; i < c.logit_count; i++)
    spread = fmax(spread, fabs(c.logits[TRAINER][0][i] - c.logits[TRAINER][1][i]));
  if (!(spread > 1e-3)) failures++;
  int unfolded_equal = 1;
  for (int k = 0; k < 2; k++)
    unfolded_equal &=
        !memcmp(c.logits[UNFOLDED][k], c.logits[TRAINER][k], c.logit_count * sizeof(float));
  if (!unfolded_equal) failures++;
  double folding = error_between(&c, FOLDED, TRAINER);
  double folded_error = error_between(&c, FOLDED, F32_TRAINER);
  double eval_error = error_between(&c, TRAINER, F32_TRAINER);
  if (compute == FP_F32 ? !(folding <= F32_FOLDING) : !(folded_error <= BF16_SLACK * eval_error))
    failures++;
  size_t train_bytes = unet_activation_bytes(c.models[TRAINER]),
         infer_bytes = unet_activation_bytes(c.models[FOLDED]);
  if (!(infer_bytes < train_bytes / 2)) failures++;
  printf("%s %s, branches %s, 2 batches: unfolded inference model %s the training model's eval "
         "output, folded one %.2e from it; from f32 eval: folded %.2e, eval %.2e; activations "
         "%.1f MB, training model's %.1f MB: %s\n",
         unet_arch_name(arch), fp_dtype_name(compute), branch_mode_name(branches.mode),
         unfolded_equal ? "equals" : "DIFFERS FROM", folding, folded_error, eval_error,
         infer_bytes / 1e6, train_bytes / 1e6, failures ? "FAIL" : "ok");
  comparison_release(&c);
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
