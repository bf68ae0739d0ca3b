/* The ops with no backward of their own, against plain host references in double: the loss value,
 * its weight sum and its gradient, argmax and softmax over channels, the gradient norm with
 * clipping and the non-finite flag, and Adam/AdamW with clipping. test_gradcheck also covers the
 * loss gradient (by finite differences); the twin covers these inside whole steps, but a
 * backend's kernel is easier to locate here; the same for synchronized batch norm's per-channel
 * steps, which train_equivalence.py covers in training. Sizes are odd and large enough to span
 * many GPU blocks (grid-stride loops, partial tiles). Tolerances: f32 sums of ~1e6 terms in a
 * different order differ by far less than 1e-5 relative; Adam's update is a handful of f32
 * operations per element, so each parameter agrees to a few f32 roundings of its step (1e-6
 * relative to the largest parameter). */
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

static void check_loss_argmax_confidence(rng *r, fp_dtype type) {
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
  tensor t = tensor_shape(type, n, classes, h, w);
  be->tensor_alloc(&t);
  be->tensor_from_nchw(&t, logits);
  uint8_t *device_labels = be->alloc(FP_U8, pixels), *device_predicted = be->alloc(FP_U8, pixels);
  be->upload(device_labels, labels, FP_U8, pixels);
  float *device_weights = device_floats(weights, classes);
  double *scalars = be->alloc(FP_F64, SCALAR_COUNT), got[SCALAR_COUNT];
  be->softmax_cross_entropy(&t, device_labels, device_weights, 255, 1.0f, NULL, NULL, scalars);
  float *device_confidence = be->alloc(FP_F32, pixels);
  be->argmax_channels(&t, device_predicted, device_confidence);
  read_scalars(got, scalars);
  be->download(predicted, device_predicted, FP_U8, pixels);
  float *confidence = fp_malloc(pixels * sizeof *confidence);
  be->download(confidence, device_confidence, FP_F32, pixels);

  double weighted_nll = 0.0, weight_sum = 0.0, worst_confidence = 0.0;
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
    worst_confidence = fmax(worst_confidence, fabs(confidence[p] - 1.0 / sum));
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
    be->softmax_cross_entropy(&t, device_labels, device_weights, 255, 1.0f, NULL, NULL, scalars);
    double counted[SCALAR_COUNT];
    read_scalars(counted, scalars);
    snprintf(what, sizeof what, "%s loss: 3 labels made bad, counted", name);
    expect(counted[SCALAR_BAD_LABELS] == 3.0, what, counted[SCALAR_BAD_LABELS], 3.0);
  }
  snprintf(what, sizeof what, "%s argmax: pixels differing", name);
  expect(argmax_wrong == 0, what, argmax_wrong, 0);
  snprintf(what, sizeof what, "%s argmax confidence: worst absolute error", name);
  /* computed in f32 from logits the reference sees exactly, whatever their dtype */
  expect(worst_confidence <= 1e-6, what, worst_confidence, 0.0);
  free(logits);
  free(labels);
  free(predicted);
  free(confidence);
  be->tensor_release(&t);
  be->release(device_confidence);
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
  be->gradient_norm(dg, count, clip_norm, 1.0, scalars);
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
  be->gradient_norm(dg, count, clip_norm, 1.0, scalars);
  read_scalars(host, scalars);
  expect(host[SCALAR_NONFINITE] == 1.0, "non-finite flag (a NaN gradient)", host[SCALAR_NONFINITE],
         1.0);
  free(g), free(p), free(m), free(v), free(got);
  be->release(dg), be->release(dp), be->release(dm), be->release(dv), be->release(scalars);
}

/* One gradient_norm + adam_update on `grads` (scaled by loss_scale) from the same start; the
 * parameters after it in params_out, the scalars in host. */
static void norm_and_update(const float *grads, const float *p, const float *m, const float *v,
                            size_t count, double clip_norm, double loss_scale, float *params_out,
                            float *moments_out, double host[SCALAR_COUNT]) {
  float *dg = device_floats(grads, count), *dp = device_floats(p, count);
  float *dm = device_floats(m, count), *dv = device_floats(v, count);
  double *scalars = be->alloc(FP_F64, SCALAR_COUNT);
  be->gradient_norm(dg, count, clip_norm, loss_scale, scalars);
  double lr_and_step[2] = {3e-3, 5};
  be->upload(scalars + SCALAR_LR, lr_and_step, FP_F64, 2);
  adam_config cfg = {0.9f, 0.999f, 1e-8f, 1e-2f, 1};
  be->adam_update(dp, dg, dm, dv, count, &cfg, scalars);
  read_scalars(host, scalars);
  be->download(params_out, dp, FP_F32, count);
  be->download(moments_out, dv, FP_F32, count);
  be->release(dg), be->release(dp), be->release(dm), be->release(dv), be->release(scalars);
}

/* Loss scaling: gradients 2^k times the true ones, with loss_scale 2^k, give exactly the true
 * norm, the true clip factor / 2^k and bit for bit the same update, clipped or not; a non-finite
 * gradient leaves parameters and moments untouched (the step is skipped). */
static void check_loss_scaling(rng *r) {
  const size_t count = 100003;
  const double scale = 1024.0;
  float *g = fp_malloc(count * sizeof *g), *scaled = fp_malloc(count * sizeof *scaled);
  float *p = fp_malloc(count * sizeof *p), *m = fp_malloc(count * sizeof *m);
  float *v = fp_malloc(count * sizeof *v);
  float *want = fp_malloc(count * sizeof *want), *got = fp_malloc(count * sizeof *got);
  float *want_v = fp_malloc(count * sizeof *want_v), *got_v = fp_malloc(count * sizeof *got_v);
  for (size_t i = 0; i < count; i++) {
    g[i] = (float)(1e-3 * rng_normal(r));
    scaled[i] = g[i] * (float)scale;
    p[i] = (float)rng_normal(r);
    m[i] = (float)(1e-4 * rng_normal(r));
    v[i] = (float)(1e-7 * rng_uniform(r));
  }
  double want_s[SCALAR_COUNT], got_s[SCALAR_COUNT];
  for (int clipped = 0; clipped < 2; clipped++) {
    double clip_norm = clipped ? 0.01 : 0.0;
    norm_and_update(g, p, m, v, count, clip_norm, 1.0, want, want_v, want_s);
    norm_and_update(scaled, p, m, v, count, clip_norm, scale, got, got_v, got_s);
    expect(got_s[SCALAR_GRAD_NORM] == want_s[SCALAR_GRAD_NORM], "loss-scaled gradient norm",
           got_s[SCALAR_GRAD_NORM], want_s[SCALAR_GRAD_NORM]);
    expect(got_s[SCALAR_CLIP_FACTOR] * scale == want_s[SCALAR_CLIP_FACTOR],
           "loss-scaled clip factor x scale", got_s[SCALAR_CLIP_FACTOR] * scale,
           want_s[SCALAR_CLIP_FACTOR]);
    expect((want_s[SCALAR_CLIP_FACTOR] < 1.0) == clipped, "clipping happened as intended",
           want_s[SCALAR_CLIP_FACTOR], clipped);
    expect(!memcmp(got, want, count * sizeof *got) && !memcmp(got_v, want_v, count * sizeof *got),
           clipped ? "loss-scaled update, clipped: bit for bit" : "loss-scaled update: bit for bit",
           0, 0);
  }
  scaled[count / 3] = INFINITY;
  norm_and_update(scaled, p, m, v, count, 0.0, scale, got, got_v, got_s);
  expect(got_s[SCALAR_NONFINITE] == 1.0, "non-finite flag (an infinite scaled gradient)",
         got_s[SCALAR_NONFINITE], 1.0);
  expect(!memcmp(got, p, count * sizeof *got) && !memcmp(got_v, v, count * sizeof *got),
         "a non-finite step leaves parameters and moments as they were", 0, 0);
  free(g), free(scaled), free(p), free(m), free(v), free(want), free(got), free(want_v);
  free(got_v);
}

/* download_async into host_alloc memory: each fence's data is there after its wait, and ops
 * queued after the copy (here overwriting the source) do not reach it. */
static void check_async_download(rng *r) {
  const size_t count = 100003;
  float *want = fp_malloc(2 * count * sizeof *want);
  for (size_t i = 0; i < 2 * count; i++) want[i] = (float)rng_normal(r);
  float *device = device_floats(want, 2 * count);
  float *host[BACKEND_FENCES];
  for (int f = 0; f < BACKEND_FENCES; f++) {
    host[f] = be->host_alloc(count * sizeof *host[f]);
    be->download_async(host[f], device + (size_t)f * count, FP_F32, count, f);
  }
  be->fill_zero(device, FP_F32, 2 * count);
  int wrong = 0;
  for (int f = BACKEND_FENCES - 1; f >= 0; f--) {
    be->download_wait(f);
    wrong += memcmp(host[f], want + (size_t)f * count, count * sizeof *want) != 0;
    be->host_release(host[f]);
  }
  expect(wrong == 0, "download_async: fences whose data differs", wrong, 0.0);
  be->release(device);
  free(want);
}

/* The per-step gradient factor of the cross-entropy and the box loss (backend memory, read when
 * the op runs): grad_scale 2 with factor 0.75 gives bit for bit the gradient of grad_scale 1.5
 * without one (the factor multiplies grad_scale first), the factor uploaded after a call that
 * read another value. */
static void check_grad_factor(rng *r) {
  const int n = 2, classes = 5, h = 9, w = 11;
  const size_t pixels = (size_t)n * h * w, count = pixels * classes, boxes = 4 * (size_t)n * 3;
  float *host = fp_malloc((count + boxes) * sizeof *host), weights[5] = {1, 2, 0.5f, 1, 3};
  uint8_t *labels = fp_malloc(pixels);
  for (size_t i = 0; i < count + boxes; i++) host[i] = (float)rng_normal(r);
  for (size_t p = 0; p < pixels; p++) labels[p] = (uint8_t)(rng_next(r) % (uint64_t)classes);
  float targets[24], mask[6] = {1, 0, 1, 1, 1, 0};
  for (size_t i = 0; i < boxes; i++) targets[i] = (float)rng_uniform(r);
  tensor logits = tensor_shape(FP_F32, n, classes, h, w), x = tensor_shape(FP_F32, n, 12, 1, 1);
  tensor grads[2] = {logits, logits}, box_grads[2] = {x, x};
  be->tensor_alloc(&logits);
  be->tensor_alloc(&x);
  be->tensor_from_nchw(&logits, host);
  be->tensor_from_nchw(&x, host + count);
  uint8_t *device_labels = be->alloc(FP_U8, pixels);
  be->upload(device_labels, labels, FP_U8, pixels);
  float *device_weights = device_floats(weights, classes), one = 1.0f, factor = 0.75f;
  float *device_targets = device_floats(targets, boxes), *device_mask = device_floats(mask, 6);
  float *device_factor = device_floats(&one, 1);
  double *scalars = be->alloc(FP_F64, SCALAR_COUNT);
  for (int v = 0; v < 2; v++) {
    be->tensor_alloc(&grads[v]);
    be->tensor_alloc(&box_grads[v]);
  }
  be->softmax_cross_entropy(&logits, device_labels, device_weights, 255, 1.5f, device_factor,
                            &grads[0], scalars);
  be->sigmoid_smooth_l1(&x, device_targets, device_mask, 1.5f, device_factor, &box_grads[0],
                        scalars);
  be->upload(device_factor, &factor, FP_F32, 1); /* read by the ops before as 1 */
  be->softmax_cross_entropy(&logits, device_labels, device_weights, 255, 2.0f, device_factor,
                            &grads[1], scalars);
  be->sigmoid_smooth_l1(&x, device_targets, device_mask, 2.0f, device_factor, &box_grads[1],
                        scalars);
  size_t sizes[2] = {count, boxes}, wrong[2] = {0, 0};
  tensor *pairs[2][2] = {{&grads[0], &grads[1]}, {&box_grads[0], &box_grads[1]}};
  for (int k = 0; k < 2; k++) {
    float *got[2];
    for (int v = 0; v < 2; v++) {
      got[v] = fp_malloc(sizes[k] * sizeof *got[v]);
      be->tensor_to_nchw(pairs[k][v], got[v]);
    }
    for (size_t i = 0; i < sizes[k]; i++) wrong[k] += got[1][i] != got[0][i];
    for (int v = 0; v < 2; v++) free(got[v]);
  }
  expect(wrong[0] == 0, "cross-entropy gradient x device factor: elements differing", wrong[0], 0);
  expect(wrong[1] == 0, "box loss gradient x device factor: elements differing", wrong[1], 0);
  for (int v = 0; v < 2; v++) {
    be->tensor_release(&grads[v]);
    be->tensor_release(&box_grads[v]);
  }
  be->tensor_release(&logits);
  be->tensor_release(&x);
  void *buffers[] = {device_labels, device_weights, device_targets,
                     device_mask,   device_factor,  scalars};
  for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) be->release(buffers[i]);
  free(host);
  free(labels);
}

/* The cross-entropy gradient against double: grad_scale * w[t] * (softmax - onehot(t)) / sum of
 * the weights, 0 at ignored pixels. Bound: f32 1e-5 of the largest element (a softmax in f32 is
 * a few roundings, ~1e-7 relative, then one scaling); bf16 2^-7: storing the gradient in bf16
 * (8 significant bits) moves each element by up to 2^-8 of itself, seen 3.87e-3. The
 * finite differences of test_gradcheck and the twins' 1e-3 miss an f32 error of 1e-4; this
 * does not. */
static void check_loss_gradient(rng *r, fp_dtype type) {
  const int n = 2, classes = 19, h = 13, w = 17; /* 221-pixel planes: partial tiles */
  const size_t pixels = (size_t)n * h * w, count = pixels * classes, plane = (size_t)h * w;
  const float grad_scale = 4.0f;
  float *logits = fp_malloc(count * sizeof *logits), *got = fp_malloc(count * sizeof *got);
  float weights[19];
  uint8_t *labels = fp_malloc(pixels);
  for (int k = 0; k < classes; k++) weights[k] = (float)(0.5 + rng_uniform(r));
  for (size_t i = 0; i < count; i++) logits[i] = (float)(6.0 * rng_normal(r));
  for (size_t p = 0; p < pixels; p++)
    labels[p] = (uint8_t)(p % 7 == 3 ? 255 : rng_next(r) % (uint64_t)classes);
  tensor t = tensor_shape(type, n, classes, h, w), grad = t;
  be->tensor_alloc(&t);
  be->tensor_alloc(&grad);
  be->tensor_from_nchw(&t, logits);
  be->tensor_to_nchw(&t, logits); /* as stored (bf16: rounded) */
  uint8_t *device_labels = be->alloc(FP_U8, pixels);
  be->upload(device_labels, labels, FP_U8, pixels);
  float *device_weights = device_floats(weights, classes);
  double *scalars = be->alloc(FP_F64, SCALAR_COUNT);
  be->softmax_cross_entropy(&t, device_labels, device_weights, 255, grad_scale, NULL, &grad,
                            scalars);
  be->tensor_to_nchw(&grad, got);
  double weight_sum = 0.0, worst = 0.0, largest = 0.0;
  for (size_t p = 0; p < pixels; p++)
    if (labels[p] != 255) weight_sum += weights[labels[p]];
  for (size_t p = 0; p < pixels; p++) {
    const size_t first = (p / plane) * classes * plane + p % plane;
    double max = logits[first], sum = 0.0;
    for (int k = 1; k < classes; k++) max = fmax(max, logits[first + k * plane]);
    for (int k = 0; k < classes; k++) sum += exp(logits[first + k * plane] - max);
    for (int k = 0; k < classes; k++) {
      double want = 0.0;
      if (labels[p] != 255)
        want = grad_scale * weights[labels[p]] *
               (exp(logits[first + k * plane] - max) / sum - (k == labels[p])) / weight_sum;
      worst = fmax(worst, fabs(got[first + k * plane] - want));
      largest = fmax(largest, fabs(want));
    }
  }
  char what[96];
  snprintf(what, sizeof what, "%s cross-entropy gradient: worst error / largest",
           fp_dtype_name(type));
  expect(worst <= (type == FP_F32 ? 1e-5 : 1.0 / 128) * largest, what, worst / largest, 0.0);
  be->tensor_release(&t);
  be->tensor_release(&grad);
  be->release(device_labels);
  be->release(device_weights);
  be->release(scalars);
  free(logits);
  free(got);
  free(labels);
}

/* Synchronized batch norm's per-channel steps (the all-reduces between them are the model's). */
static void check_sync_bn_ops(rng *r) {
  enum { channels = 1031 };
  const size_t count_per_channel = 4097;
  const float eps = 1e-5f;
  float host[8]
            [channels]; /* mean, var, global mean, grad gamma, grad beta, mean grads (2), gamma */
  for (int c = 0; c < channels; c++) {
    host[0][c] = (float)rng_normal(r);
    host[1][c] = (float)(0.5 + fabs(rng_normal(r)));
    host[2][c] = host[0][c] + (float)(0.1 * rng_normal(r));
    for (int k = 3; k < 8; k++) host[k][c] = (float)(100.0 * rng_normal(r));
  }
  float *device = device_floats(&host[0][0], 8 * (size_t)channels);
  float *scale_shift = be->alloc(FP_F32, 2 * (size_t)channels);
  float *d[8];
  for (int k = 0; k < 8; k++) d[k] = device + (size_t)k * channels;
  be->batchnorm_sync_moments(d[0], d[1], d[2], channels);
  be->batchnorm_sync_backward_terms(d[3], d[4], d[5], d[7], d[1], eps, count_per_channel, channels,
                                    scale_shift, scale_shift + channels);
  float got[4][channels];
  be->download(got[0], d[0], FP_F32, 2 * (size_t)channels);
  be->download(got[2], scale_shift, FP_F32, 2 * (size_t)channels);
  double worst[4] = {0};
  for (int c = 0; c < channels; c++) {
    double offset = (double)host[0][c] - host[2][c], variance = host[1][c] + offset * offset;
    double gamma_over_sigma = host[7][c] / sqrt((double)got[1][c] + eps);
    double want[4] = {host[2][c], variance,
                      gamma_over_sigma * ((double)host[3][c] - host[5][c]) / count_per_channel,
                      gamma_over_sigma * ((double)host[4][c] - host[6][c]) / count_per_channel};
    for (int k = 0; k < 4; k++)
      worst[k] = fmax(worst[k], fabs(got[k][c] - want[k]) / fmax(fabs(want[k]), 1e-30));
  }
  const char *names[4] = {"sync bn moments: mean (relative)", "sync bn moments: variance",
                          "sync bn backward terms: scale", "sync bn backward terms: shift"};
  for (int k = 0; k < 4; k++) expect(worst[k] <= 1e-6, names[k], worst[k], 0.0);
  be->release(device);
  be->release(scale_shift);
}

int main(void) {
  be = test_backend();
  printf("backend %s\n", be->name);
  rng r;
  rng_seed(&r, 4242);
  check_loss_argmax_confidence(&r, FP_F32);
  if (test_precision_runs(be, FP_BF16)) check_loss_argmax_confidence(&r, FP_BF16);
  check_norm_and_adam(&r, 1);
  check_norm_and_adam(&r, 0);
  check_loss_scaling(&r);
  check_async_download(&r);
  check_sync_bn_ops(&r);
  check_grad_factor(&r);
  check_loss_gradient(&r, FP_F32);
  if (test_precision_runs(be, FP_BF16)) check_loss_gradient(&r, FP_BF16);
  printf("step ops: %d failed\n", failures);
  return failures ? 1 : 0;
}
