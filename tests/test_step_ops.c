/* The ops with no backward of their own, against plain host references in double: the loss value
 * and its weight sum, argmax and softmax over channels, the gradient norm with clipping and the
 * non-finite flag, and Adam/AdamW with clipping. test_gradcheck covers the loss gradient; the
 * twin covers these inside whole steps, but a backend's kernel is easier to locate here.
 * Sizes are odd and large enough to span many GPU blocks (grid-stride loops, partial tiles).
 * Tolerances: f32 sums of ~1e6 terms in a different order differ by far less than 1e-5
 * relative; Adam's update is a handful of f32 operations per element, so each parameter agrees
 * to a few f32 roundings of its step (1e-6 relative to the largest parameter). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rng.h"
#include "test_backend.h"

static const backend *be;
static int failures;

static void expect(int ok, const char *what, double got, double want) {
  printf("%-52s got %.9g want %.9g %s\n", what, got, want, ok ? "ok" : "FAIL");
  if (!ok) failures++;
}

static int close_to(double got, double want, double relative) {
  return fabs(got - want) <= relative * fmax(fabs(want), 1e-30);
}

static float *device_floats(const float *host, size_t count) {
  float *p = be->alloc(FP_F32, count);
  be->upload(p, host, FP_F32, count);
  return p;
}

static void read_scalars(double *host, const double *device) {
  be->download(host, device, FP_F64, SCALAR_COUNT);
}

static void check_loss_argmax_softmax(rng *r, fp_dtype type) {
  const int n = 3, classes = 7, h = 37, w = 29;
  const size_t pixels = (size_t)n * h * w, count = pixels * classes;
  float *logits = fp_malloc(count * sizeof *logits), weights[7] = {1, 2, 2, 0.5f, 2, 3, 1.5f};
  uint8_t *labels = fp_malloc(pixels), *predicted = fp_malloc(pixels);
  for (size_t i = 0; i < count; i++) logits[i] = (float)(4.0 * rng_normal(r));
  if (type == FP_BF16) /* bf16-representable, so the reference sees what the backend sees */
    for (size_t i = 0; i < count; i++)
      logits[i] = (float)(int)(logits[i] * 8.0f) / 8.0f; /* < 2^8 eighths */
  for (size_t p = 0; p < pixels; p++)
    labels[p] = (uint8_t)(p % 11 == 5 ? 255 : rng_next(r) % (uint64_t)classes);
  tensor t = tensor_shape(type, n, classes, h, w), probabilities = t;
  be->tensor_alloc(&t);
  be->tensor_alloc(&probabilities);
  be->tensor_from_nchw(&t, logits);
  uint8_t *device_labels = be->alloc(FP_U8, pixels), *device_predicted = be->alloc(FP_U8, pixels);
  be->upload(device_labels, labels, FP_U8, pixels);
  float *device_weights = device_floats(weights, classes);
  double *scalars = be->alloc(FP_F64, SCALAR_COUNT), got[SCALAR_COUNT];
  be->softmax_cross_entropy(&t, device_labels, device_weights, 255, 1.0f, NULL, scalars);
  be->argmax_channels(&t, device_predicted);
  be->softmax_channels(&t, &probabilities);
  read_scalars(got, scalars);
  be->download(predicted, device_predicted, FP_U8, pixels);
  float *probability = fp_malloc(count * sizeof *probability);
  be->tensor_to_nchw(&probabilities, probability);

  double weighted_nll = 0.0, weight_sum = 0.0, worst_probability = 0.0;
  int argmax_wrong = 0;
  const size_t plane = (size_t)h * w;
  for (size_t p = 0; p < pixels; p++) {
    const float *x = logits + (p / plane) * classes * plane + p % plane;
    int best = 0;
    double max = x[0], sum = 0.0;
    for (int k = 1; k < classes; k++)
      if (x[k * plane] > x[best * plane]) best = k, max = x[k * plane];
    for (int k = 0; k < classes; k++) sum += exp(x[k * plane] - max);
    argmax_wrong += predicted[p] != best;
    for (int k = 0; k < classes; k++) {
      double want = exp(x[k * plane] - max) / sum;
      double error =
          fabs(probability[(p / plane) * classes * plane + k * plane + p % plane] - want);
      if (error > worst_probability) worst_probability = error;
    }
    if (labels[p] == 255) continue;
    weighted_nll += weights[labels[p]] * (log(sum) - (x[labels[p] * plane] - max));
    weight_sum += weights[labels[p]];
  }
  const char *name = fp_dtype_name(type);
  char what[96];
  snprintf(what, sizeof what, "%s loss (weighted mean over %zu pixels)", name, pixels);
  expect(close_to(got[SCALAR_LOSS], weighted_nll / weight_sum, 1e-5), what, got[SCALAR_LOSS],
         weighted_nll / weight_sum);
  snprintf(what, sizeof what, "%s loss weight sum", name);
  expect(close_to(got[SCALAR_LOSS_WEIGHT], weight_sum, 1e-6), what, got[SCALAR_LOSS_WEIGHT],
         weight_sum);
  snprintf(what, sizeof what, "%s loss: labels outside the classes", name);
  expect(got[SCALAR_BAD_LABELS] == 0.0, what, got[SCALAR_BAD_LABELS], 0.0);
  if (be->device_memory) { /* counted, not stopped at (backend.h); a host backend stops */
    const uint8_t bad[3] = {7, 200, 254};
    for (int i = 0; i < 3; i++) be->upload(device_labels + 100 * i + 1, &bad[i], FP_U8, 1);
    be->softmax_cross_entropy(&t, device_labels, device_weights, 255, 1.0f, NULL, scalars);
    double counted[SCALAR_COUNT];
    read_scalars(counted, scalars);
    snprintf(what, sizeof what, "%s loss: 3 labels made bad, counted", name);
    expect(counted[SCALAR_BAD_LABELS] == 3.0, what, counted[SCALAR_BAD_LABELS], 3.0);
  }
  snprintf(what, sizeof what, "%s argmax: pixels differing", name);
  expect(argmax_wrong == 0, what, argmax_wrong, 0);
  snprintf(what, sizeof what, "%s softmax: worst absolute error", name);
  /* bf16 probabilities keep 8 bits: 2^-9 of a value <= 1 */
  expect(worst_probability <= (type == FP_BF16 ? 0x1p-8 : 1e-6), what, worst_probability, 0.0);
  free(logits);
  free(labels);
  free(predicted);
  free(probability);
  be->tensor_release(&t);
  be->tensor_release(&probabilities);
  be->release(device_labels);
  be->release(device_predicted);
  be->release(device_weights);
  be->release(scalars);
}

static void adam_reference(float *p, const float *g, float *m, float *v, size_t count,
                           const adam_config *cfg, double lr, double step, double clip) {
  for (size_t i = 0; i < count; i++) {
    double decay = cfg->decoupled_weight_decay ? 1.0 - lr * cfg->weight_decay : 1.0;
    double l2 = cfg->decoupled_weight_decay ? 0.0 : cfg->weight_decay;
    double grad = (double)g[i] * (float)clip + l2 * p[i];
    double m1 = m[i] * (double)cfg->beta1 + (1.0 - cfg->beta1) * grad;
    double v1 = v[i] * (double)cfg->beta2 + (1.0 - cfg->beta2) * grad * grad;
    double bias1 = 1.0 - pow(cfg->beta1, step), bias2_sqrt = sqrt(1.0 - pow(cfg->beta2, step));
    p[i] = (float)(p[i] * decay - lr / bias1 * (m1 / (sqrt(v1) / bias2_sqrt + cfg->eps)));
    m[i] = (float)m1;
    v[i] = (float)v1;
  }
}

static void check_norm_and_adam(rng *r, int decoupled) {
  const size_t count = 1000003;
  float *g = fp_malloc(count * sizeof *g), *p = fp_malloc(count * sizeof *p);
  float *m = fp_malloc(count * sizeof *m), *v = fp_malloc(count * sizeof *v);
  double sum = 0.0;
  for (size_t i = 0; i < count; i++) {
    g[i] = (float)(1e-3 * rng_normal(r));
    p[i] = (float)rng_normal(r);
    m[i] = (float)(1e-4 * rng_normal(r));
    v[i] = (float)(1e-7 * rng_uniform(r));
    sum += (double)g[i] * g[i];
  }
  float *dg = device_floats(g, count), *dp = device_floats(p, count);
  float *dm = device_floats(m, count), *dv = device_floats(v, count);
  double *scalars = be->alloc(FP_F64, SCALAR_COUNT), host[SCALAR_COUNT] = {0};
  const double norm = sqrt(sum), clip_norm = norm / 2.0;
  be->gradient_norm(dg, count, clip_norm, scalars);
  read_scalars(host, scalars);
  expect(close_to(host[SCALAR_GRAD_NORM], norm, 1e-6), "gradient norm", host[SCALAR_GRAD_NORM],
         norm);
  double clip = (double)(float)(clip_norm / (norm + 1e-6));
  expect(close_to(host[SCALAR_CLIP_FACTOR], clip, 1e-6), "clip factor", host[SCALAR_CLIP_FACTOR],
         clip);
  expect(host[SCALAR_NONFINITE] == 0.0, "non-finite flag (finite gradients)",
         host[SCALAR_NONFINITE], 0.0);

  host[SCALAR_LR] = 3e-3;
  host[SCALAR_STEP] = 7;
  be->upload(scalars, host, FP_F64, SCALAR_COUNT);
  adam_config cfg = {0.9f, 0.999f, 1e-8f, 1e-2f, decoupled};
  be->adam_update(dp, dg, dm, dv, count, &cfg, scalars);
  adam_reference(p, g, m, v, count, &cfg, host[SCALAR_LR], host[SCALAR_STEP],
                 host[SCALAR_CLIP_FACTOR]);
  float *got = fp_malloc(count * sizeof *got);
  be->download(got, dp, FP_F32, count);
  double worst = 0.0, largest = 0.0;
  for (size_t i = 0; i < count; i++) {
    worst = fmax(worst, fabs((double)got[i] - p[i]));
    largest = fmax(largest, fabs((double)p[i]));
  }
  expect(worst <= 1e-6 * largest,
         decoupled ? "AdamW parameters: worst |error| (clipped)"
                   : "Adam (L2) parameters: worst |error| (clipped)",
         worst, 0.0);

  const float nan = NAN;
  be->upload(dg + count / 2, &nan, FP_F32, 1);
  be->gradient_norm(dg, count, clip_norm, scalars);
  read_scalars(host, scalars);
  expect(host[SCALAR_NONFINITE] == 1.0, "non-finite flag (a NaN gradient)", host[SCALAR_NONFINITE],
         1.0);
  free(g), free(p), free(m), free(v), free(got);
  be->release(dg), be->release(dp), be->release(dm), be->release(dv), be->release(scalars);
}

int main(void) {
  be = test_backend();
  printf("backend %s\n", be->name);
  rng r;
  rng_seed(&r, 4242);
  check_loss_argmax_softmax(&r, FP_F32);
  char why[256];
  if (be->dtype_support(FP_BF16, why, sizeof why) != DTYPE_NOT_NATIVE)
    check_loss_argmax_softmax(&r, FP_BF16);
  else
    printf("bf16: not checked: %s\n", why);
  check_norm_and_adam(&r, 1);
  check_norm_and_adam(&r, 0);
  printf("step ops: %d failed\n", failures);
  return failures ? 1 : 0;
}
