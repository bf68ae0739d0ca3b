/* The inference model's fused ops (unet.folded) on their own:
 *  - conv2d_forward_fused against the ops it replaces (conv2d_forward, add, relu_forward), which
 *    test_gradcheck and the twin check: every epilogue (residual, ReLU, neither, no bias) on 3x3
 *    and 1x1 convolutions, stride 1 and 2. In f32 the two differ only where the bias and the
 *    residual join the sum (1e-5 of the output's range; Winograd, which oneDNN may pick for
 *    either, differs from direct convolution by about that). In bf16 the unfused ops round the
 *    convolution's output and then the sum, the fused op once or twice (backend.h): each
 *    rounding moves a value by at most 2^-9 of itself, so the two differ by at most 2^-8 of the
 *    largest |convolution| + |output|.
 *  - batchnorm_fold against a host reference in double: f32 weights and biases to a few f32
 *    roundings (1e-6 relative), bf16 weights to one rounding (2^-8 relative).
 * Shapes are odd and large enough to span many GPU blocks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "rng.h"
#include "test_backend.h"

static const backend *be;
static int failures;

static void expect(int ok, const char *what, double error, double bound) {
  printf("%-64s error %.3g (bound %.3g) %s\n", what, error, bound, ok ? "ok" : "FAIL");
  if (!ok) failures++;
}

static float *random_floats(rng *r, size_t count, double scale) {
  float *p = fp_malloc(count * sizeof *p);
  for (size_t i = 0; i < count; i++) p[i] = (float)(scale * rng_normal(r));
  return p;
}

static void *device_copy(const float *host, fp_dtype type, size_t count) {
  float *f32 = be->alloc(FP_F32, count);
  be->upload(f32, host, FP_F32, count);
  if (type == FP_F32) return f32;
  void *converted = be->alloc(type, count);
  be->convert(converted, type, f32, FP_F32, count);
  be->release(f32);
  return converted;
}

static tensor random_tensor(rng *r, fp_dtype type, int n, int c, int h, int w) {
  tensor t = {.n = n, .c = c, .h = h, .w = w, .dtype = type};
  be->tensor_alloc(&t);
  float *host = random_floats(r, tensor_count(&t), 1.0);
  be->tensor_from_nchw(&t, host);
  free(host);
  return t;
}

static void check_fused_conv(rng *r, fp_dtype type, conv_desc d, int with_bias, int with_residual,
                             int relu) {
  const int n = 3, h = 37, w = 29;
  tensor x = random_tensor(r, type, n, d.in_channels, h, w);
  tensor want = {.n = n,
                 .c = d.out_channels,
                 .h = conv_out_size(&d, h),
                 .w = conv_out_size(&d, w),
                 .dtype = type};
  tensor got = want, residual = random_tensor(r, type, n, want.c, want.h, want.w);
  be->tensor_alloc(&want);
  be->tensor_alloc(&got);
  size_t weight_count = (size_t)d.out_channels * d.in_channels * d.kernel * d.kernel;
  float *host_weights = random_floats(r, weight_count, 1.0 / sqrt(d.in_channels * d.kernel));
  float *host_bias = random_floats(r, (size_t)d.out_channels, 0.5);
  void *weights = device_copy(host_weights, type, weight_count);
  float *bias = with_bias ? device_copy(host_bias, FP_F32, (size_t)d.out_channels) : NULL;
  conv_epilogue epilogue = {with_residual ? &residual : NULL, relu};

  size_t count = tensor_count(&want);
  float *host_conv = fp_malloc(count * sizeof(float));
  be->conv2d_forward(&d, &x, weights, bias, &want);
  be->tensor_to_nchw(&want, host_conv);
  if (epilogue.residual) be->add(&want, &residual, &want);
  if (epilogue.relu) be->relu_forward(&want, &want);
  be->conv2d_forward_fused(&d, &x, weights, bias, &epilogue, &got);

  float *host_want = fp_malloc(count * sizeof(float)), *host_got = fp_malloc(count * sizeof(float));
  be->tensor_to_nchw(&want, host_want);
  be->tensor_to_nchw(&got, host_got);
  /* each rounding is relative to the value it rounds: the convolution's or the output's */
  double worst = 0.0, scale = 0.0, bound = type == FP_F32 ? 1e-5 : 1.0 / 256;
  for (size_t i = 0; i < count; i++) {
    worst = fmax(worst, fabs((double)host_got[i] - host_want[i]));
    scale = fmax(scale, fabs(host_conv[i]) + fabs(host_want[i]));
  }
  char what[160];
  snprintf(what, sizeof what, "fused conv %s %dx%d/%d %d->%d%s%s%s", fp_dtype_name(type), d.kernel,
           d.kernel, d.stride, d.in_channels, d.out_channels, with_bias ? " +bias" : "",
           epilogue.residual ? " +residual" : "", epilogue.relu ? " +relu" : "");
  expect(scale > 0.1 && worst <= bound * scale, what, worst / scale, bound);

  free(host_conv);
  free(host_want);
  free(host_got);
  free(host_weights);
  free(host_bias);
  be->release(weights);
  if (bias) be->release(bias);
  be->tensor_release(&x);
  be->tensor_release(&want);
  be->tensor_release(&got);
  be->tensor_release(&residual);
}

static void check_fold(rng *r, fp_dtype type, int with_conv_bias) {
  const conv_desc d = {67, 131, 3, 1, 1};
  const float eps = 1e-5f;
  const size_t per_output = (size_t)d.in_channels * d.kernel * d.kernel,
               count = per_output * d.out_channels, channels = (size_t)d.out_channels;
  float *weights = random_floats(r, count, 0.1);
  float *channel_values = random_floats(r, 5 * channels, 1.0); /* bias gamma beta mean var */
  for (size_t c = 0; c < channels; c++)
    channel_values[4 * channels + c] = (float)(0.01 + fabs(channel_values[4 * channels + c]));
  float *device_weights = device_copy(weights, FP_F32, count);
  float *device_channels = device_copy(channel_values, FP_F32, 5 * channels);
  const float *conv_bias = with_conv_bias ? device_channels : NULL,
              *gamma = device_channels + channels, *beta = gamma + channels,
              *mean = beta + channels, *var = mean + channels;
  void *folded = be->alloc(type, count);
  float *folded_bias = be->alloc(FP_F32, channels);
  be->batchnorm_fold(&d, device_weights, conv_bias, gamma, beta, mean, var, eps, folded, type,
                     folded_bias);
  float *folded_f32 = be->alloc(FP_F32, count);
  be->convert(folded_f32, FP_F32, folded, type, count);
  float *got = fp_malloc(count * sizeof *got), *got_bias = fp_malloc(channels * sizeof *got_bias);
  be->download(got, folded_f32, FP_F32, count);
  be->download(got_bias, folded_bias, FP_F32, channels);

  double weight_error = 0.0, bias_error = 0.0;
  const float *v = channel_values;
  for (size_t o = 0; o < channels; o++) {
    double scale = v[channels + o] / sqrt((double)v[4 * channels + o] + eps);
    for (size_t k = 0; k < per_output; k++) {
      double want = weights[o * per_output + k] * scale;
      weight_error =
          fmax(weight_error, fabs(got[o * per_output + k] - want) / fmax(fabs(want), 1e-30));
    }
    double conv_b = with_conv_bias ? v[o] : 0.0;
    double want_bias = v[2 * channels + o] + (conv_b - v[3 * channels + o]) * scale;
    double magnitude = fabs(v[2 * channels + o]) + fabs((conv_b - v[3 * channels + o]) * scale);
    bias_error = fmax(bias_error, fabs(got_bias[o] - want_bias) / magnitude);
  }
  char what[96];
  snprintf(what, sizeof what, "batchnorm_fold %s%s: weights (relative)", fp_dtype_name(type),
           with_conv_bias ? " with conv bias" : "");
  expect(weight_error <= (type == FP_F32 ? 1e-6 : 1.0 / 256), what, weight_error,
         type == FP_F32 ? 1e-6 : 1.0 / 256);
  snprintf(what, sizeof what, "batchnorm_fold %s%s: bias", fp_dtype_name(type),
           with_conv_bias ? " with conv bias" : "");
  expect(bias_error <= 1e-6, what, bias_error, 1e-6);

  free(weights);
  free(channel_values);
  free(got);
  free(got_bias);
  be->release(device_weights);
  be->release(device_channels);
  be->release(folded);
  be->release(folded_bias);
  be->release(folded_f32);
}

int main(void) {
  be = test_backend();
  printf("backend %s\n", be->name);
  rng r;
  rng_seed(&r, 77);
  const fp_dtype types[2] = {FP_F32, FP_BF16};
  const conv_desc shapes[3] = {{40, 48, 3, 1, 1}, {40, 72, 1, 2, 0}, {24, 40, 3, 2, 1}};
  const int epilogues[3][2] = {{0, 1}, {1, 1}, {1, 0}}; /* residual, relu */
  for (int t = 0; t < 2; t++) {
    if (t > 0 && !test_precision_runs(be, types[t])) continue;
    for (int s = 0; s < 3; s++) {
      for (int e = 0; e < 3; e++)
        check_fused_conv(&r, types[t], shapes[s], 1, epilogues[e][0], epilogues[e][1]);
      check_fused_conv(&r, types[t], shapes[s], 0, 0, 0);
    }
    check_fold(&r, types[t], 0);
    check_fold(&r, types[t], 1);
  }
  printf("fused conv ops: %d failed\n", failures);
  return failures ? 1 : 0;
}
