/* CPU backend: the ops of the Extended U-Net's branches (global max pool, broadcasting a vector
 * over a plane, elementwise product, sigmoid, the class-presence and box losses) as plain loops
 * over f32 NCHW copies: their tensors are small (the deepest features, [N,K,1,1] vectors). */
#include <math.h>

#include "cpu_internal.h"

const float *cpu_plain_input(const tensor *t, int slot) {
  dnnl_memory_desc_t plain = plain_md(t, FP_F32), stored = activation_md(t);
  if (dnnl_memory_desc_equal(&plain, &stored)) return t->data;
  float *copy = cpu_workspace(slot, tensor_count(t) * sizeof(float));
  reorder(&stored, t->data, &plain, copy);
  return copy;
}

float *cpu_plain_output(const tensor *t, int slot) {
  dnnl_memory_desc_t plain = plain_md(t, FP_F32), stored = activation_md(t);
  if (dnnl_memory_desc_equal(&plain, &stored)) return t->data;
  return cpu_workspace(slot, tensor_count(t) * sizeof(float));
}

void cpu_plain_done(tensor *t, float *plain) {
  if (plain == t->data) return;
  dnnl_memory_desc_t plain_desc = plain_md(t, FP_F32), stored = activation_md(t);
  reorder(&plain_desc, plain, &stored, t->data);
}

/* the index of the first maximum of x[0..count), a NaN counting as the maximum */
static size_t first_max(const float *x, size_t count) {
  size_t best = 0;
  for (size_t i = 1; i < count && !isnan(x[best]); i++)
    if (x[i] > x[best] || isnan(x[i])) best = i;
  return best;
}

void cpu_global_maxpool_forward(const tensor *x, tensor *y) {
  backend_check_vector("global max pool", y, x);
  const size_t plane = (size_t)x->h * x->w, planes = (size_t)x->n * x->c;
  const float *in = cpu_plain_input(x, CPU_WS_INPUT);
  float *out = cpu_plain_output(y, CPU_WS_OUTPUT);
#pragma omp parallel for schedule(static)
  for (size_t p = 0; p < planes; p++) out[p] = in[p * plane + first_max(in + p * plane, plane)];
  cpu_plain_done(y, out);
}

void cpu_global_maxpool_backward(const tensor *x, const tensor *dy, tensor *dx) {
  backend_check_vector("global max pool backward", dy, x);
  FP_CHECK(FP_SAME_SHAPE(x, dx) && x->dtype == dx->dtype, "global max pool backward: dx shape");
  const size_t plane = (size_t)x->h * x->w, planes = (size_t)x->n * x->c;
  const float *in = cpu_plain_input(x, CPU_WS_INPUT);
  const float *grad = cpu_plain_input(dy, CPU_WS_SECOND_INPUT);
  float *out = cpu_plain_output(dx, CPU_WS_OUTPUT);
#pragma omp parallel for schedule(static)
  for (size_t p = 0; p < planes; p++) {
    float *o = out + p * plane;
    for (size_t i = 0; i < plane; i++) o[i] = 0.0f;
    o[first_max(in + p * plane, plane)] = grad[p];
  }
  cpu_plain_done(dx, out);
}

void cpu_broadcast_plane(const tensor *x, tensor *y) {
  backend_check_vector("broadcast over a plane", x, y);
  const size_t plane = (size_t)y->h * y->w, planes = (size_t)y->n * y->c;
  const float *in = cpu_plain_input(x, CPU_WS_INPUT);
  float *out = cpu_plain_output(y, CPU_WS_OUTPUT);
#pragma omp parallel for schedule(static)
  for (size_t p = 0; p < planes; p++)
    for (size_t i = 0; i < plane; i++) out[p * plane + i] = in[p];
  cpu_plain_done(y, out);
}

void cpu_sum_plane(const tensor *dy, tensor *dx) {
  backend_check_vector("sum over a plane", dx, dy);
  const size_t plane = (size_t)dy->h * dy->w, planes = (size_t)dy->n * dy->c;
  const float *in = cpu_plain_input(dy, CPU_WS_INPUT);
  float *out = cpu_plain_output(dx, CPU_WS_OUTPUT);
#pragma omp parallel for schedule(static)
  for (size_t p = 0; p < planes; p++) {
    double sum = 0.0;
    for (size_t i = 0; i < plane; i++) sum += in[p * plane + i];
    out[p] = (float)sum;
  }
  cpu_plain_done(dx, out);
}

void cpu_mul(const tensor *a, const tensor *b, tensor *y) {
  FP_CHECK(FP_SAME_SHAPE(a, b) && FP_SAME_SHAPE(a, y) && a->dtype == b->dtype &&
               a->dtype == y->dtype,
           "mul: tensors differ in shape or type");
  const size_t count = tensor_count(a);
  const float *x = cpu_plain_input(a, CPU_WS_INPUT), *m = cpu_plain_input(b, CPU_WS_SECOND_INPUT);
  float *out = cpu_plain_output(y, CPU_WS_OUTPUT);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < count; i++) out[i] = x[i] * m[i];
  cpu_plain_done(y, out);
}

static float sigmoid(float x) {
  return 1.0f / (1.0f + expf(-x));
}

void cpu_sigmoid_forward(const tensor *x, tensor *y) {
  FP_CHECK(FP_SAME_SHAPE(x, y) && x->dtype == y->dtype, "sigmoid: x and y differ");
  const size_t count = tensor_count(x);
  const float *in = cpu_plain_input(x, CPU_WS_INPUT);
  float *out = cpu_plain_output(y, CPU_WS_OUTPUT);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < count; i++) out[i] = sigmoid(in[i]);
  cpu_plain_done(y, out);
}

void cpu_sigmoid_backward(const tensor *y, const tensor *dy, tensor *dx) {
  FP_CHECK(FP_SAME_SHAPE(y, dy) && FP_SAME_SHAPE(y, dx) && y->dtype == dy->dtype &&
               y->dtype == dx->dtype,
           "sigmoid backward: tensors differ in shape or type");
  const size_t count = tensor_count(y);
  const float *s = cpu_plain_input(y, CPU_WS_INPUT), *g = cpu_plain_input(dy, CPU_WS_SECOND_INPUT);
  float *out = cpu_plain_output(dx, CPU_WS_OUTPUT);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < count; i++) out[i] = g[i] * s[i] * (1.0f - s[i]);
  cpu_plain_done(dx, out);
}

void cpu_sigmoid_bce(const tensor *logits, const float *targets, float grad_scale, tensor *grad,
                     double *scalars) {
  FP_CHECK(logits->h == 1 && logits->w == 1, "sigmoid BCE: logits must be [N,K,1,1]");
  const size_t count = tensor_count(logits);
  const float *x = cpu_plain_input(logits, CPU_WS_INPUT);
  double sum = 0.0;
  for (size_t i = 0; i < count; i++)
    sum += fmaxf(x[i], 0.0f) - x[i] * targets[i] + log1pf(expf(-fabsf(x[i])));
  scalars[SCALAR_CLASS_LOSS] = sum / (double)count;
  if (!grad) return;
  FP_CHECK(FP_SAME_SHAPE(logits, grad), "sigmoid BCE: gradient and logits differ in shape");
  float *g = cpu_plain_output(grad, CPU_WS_OUTPUT);
  const float scale = grad_scale / (float)count;
  for (size_t i = 0; i < count; i++) g[i] = scale * (sigmoid(x[i]) - targets[i]);
  cpu_plain_done(grad, g);
}

void cpu_sigmoid_smooth_l1(const tensor *x, const float *targets, const float *mask,
                           float grad_scale, const float *grad_factor, tensor *grad,
                           double *scalars) {
  FP_CHECK(x->h == 1 && x->w == 1 && x->c % 4 == 0, "box loss: x must be [N,4K,1,1]");
  const size_t count = tensor_count(x);
  const float *in = cpu_plain_input(x, CPU_WS_INPUT);
  double sum = 0.0, present = 0.0;
  for (size_t i = 0; i < count; i++) {
    if (mask[i / 4] == 0.0f) continue;
    float d = sigmoid(in[i]) - targets[i];
    sum += fabsf(d) < 1.0f ? 0.5f * d * d : fabsf(d) - 0.5f;
    present += 1.0;
  }
  scalars[SCALAR_BOX_COUNT] = present;
  scalars[SCALAR_BOX_LOSS] = present > 0.0 ? sum / present : 0.0;
  if (!grad) return;
  FP_CHECK(FP_SAME_SHAPE(x, grad), "box loss: gradient and x differ in shape");
  float *g = cpu_plain_output(grad, CPU_WS_OUTPUT);
  if (grad_factor) grad_scale *= *grad_factor;
  const float scale = present > 0.0 ? grad_scale / (float)present : 0.0f;
  for (size_t i = 0; i < count; i++) {
    float s = sigmoid(in[i]), d = s - targets[i];
    float slope = fabsf(d) < 1.0f ? d : (d > 0.0f ? 1.0f : -1.0f);
    g[i] = mask[i / 4] == 0.0f ? 0.0f : scale * slope * s * (1.0f - s);
  }
  cpu_plain_done(grad, g);
}
