/* The shared finite-difference harness (gradcheck.h). */
#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

const backend *be;
fp_dtype activation_dtype = FP_F32; /* of activations and of conv/inner-product weights */

tensor upload(const tensor *shape, const float *host) {
  tensor t = *shape;
  t.dtype = activation_dtype;
  be->tensor_alloc(&t);
  if (host) be->tensor_from_nchw(&t, host);
  return t;
}

void download(tensor *t, float *host) {
  be->tensor_to_nchw(t, host);
  be->release(t->data);
}

float *upload_flat(const float *host, size_t count) {
  float *p = be->alloc(FP_F32, count);
  be->upload(p, host, FP_F32, count);
  return p;
}

/* weights of conv / inner product, in the activations' dtype */
void *upload_weights(const float *host, size_t count) {
  float *f32 = upload_flat(host, count);
  if (activation_dtype == FP_F32) return f32;
  void *converted = be->alloc(activation_dtype, count);
  be->convert(converted, activation_dtype, f32, FP_F32, count);
  be->release(f32);
  return converted;
}

void download_flat(float *host, float *p, size_t count) {
  be->download(host, p, FP_F32, count);
  be->release(p);
}

/* ------------------------------------------------------------- harness */

static double weighted_sum(const float *r, const float *y, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += (double)r[i] * y[i];
  return s;
}

static int check_case(op_case *c, rng *r) {
  float *inputs[MAX_INPUTS], *grads[MAX_INPUTS];
  for (int i = 0; i < c->input_count; i++) {
    inputs[i] = fp_malloc(c->input_sizes[i] * sizeof *inputs[i]);
    grads[i] = fp_calloc(c->input_sizes[i], sizeof *grads[i]);
    for (size_t k = 0; k < c->input_sizes[i]; k++) {
      float v = (float)rng_normal(r);
      if (c->value_spacing > 0) /* distinct values, away from 0 */
        v = (float)((k % 2 ? 1 : -1) *
                    (0.05 + c->value_spacing * (double)((k * 7919) % c->input_sizes[i])));
      inputs[i][k] = v;
    }
  }
  float *output = fp_malloc(c->output_size * sizeof *output);
  float *weights = fp_malloc(c->output_size * sizeof *weights);
  for (size_t k = 0; k < c->output_size; k++)
    weights[k] = c->output_size == 1 ? 1.0f : (float)rng_normal(r);
  c->backward(c, inputs, weights, grads);

  int failures = 0;
  double worst = 0.0;
  for (int i = 0; i < c->input_count; i++) {
    for (int s = 0; s < SAMPLES_PER_INPUT; s++) {
      size_t k = (size_t)(rng_next(r) % c->input_sizes[i]);
      /* half the samples where the analytic gradient is non-zero, if any is */
      for (size_t tries = 0; s % 2 == 0 && grads[i][k] == 0.0f && tries < c->input_sizes[i];
           tries++)
        k = (k + 1) % c->input_sizes[i];
      float saved = inputs[i][k];
      inputs[i][k] = saved + (float)c->step;
      c->forward(c, inputs, output);
      double plus = weighted_sum(weights, output, c->output_size);
      inputs[i][k] = saved - (float)c->step;
      c->forward(c, inputs, output);
      double minus = weighted_sum(weights, output, c->output_size);
      inputs[i][k] = saved;
      double numeric = (plus - minus) / (2.0 * c->step), analytic = grads[i][k];
      double error = fabs(numeric - analytic) / (fabs(numeric) + fabs(analytic) + 1e-2);
      if (error > worst) worst = error;
      if (error > 2e-2) {
        failures++;
        printf("  FAIL %s d/d%s[%zu]: analytic %.6f numeric %.6f\n", c->name, c->input_names[i], k,
               analytic, numeric);
      }
    }
  }
  printf("%-36s worst relative error %.2e %s\n", c->name, worst, failures ? "FAIL" : "ok");
  for (int i = 0; i < c->input_count; i++) {
    free(inputs[i]);
    free(grads[i]);
  }
  free(output);
  free(weights);
  return failures;
}

/* ------------------------------------------------------ bf16 against f32 */

static float round_to_bf16(float v) {
  uint32_t bits;
  memcpy(&bits, &v, sizeof bits);
  bits = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u; /* nearest, ties to even */
  memcpy(&v, &bits, sizeof v);
  return v;
}

static double max_relative_error(const float *got, const float *want, size_t count) {
  double max_diff = 0.0, max_want = 0.0;
  for (size_t i = 0; i < count; i++) {
    double diff = fabs((double)got[i] - want[i]);
    if (!(diff <= max_diff)) max_diff = diff;
    if (fabs(want[i]) > max_want) max_want = fabs(want[i]);
  }
  return max_diff / (max_want > 1e-20 ? max_want : 1e-20);
}

static void run_in(fp_dtype dtype, const op_case *c, float **inputs, const float *weights,
                   float *output, float **grads) {
  activation_dtype = dtype;
  c->forward(c, inputs, output);
  c->backward(c, inputs, weights, grads);
  activation_dtype = FP_F32;
}

static int compare_bf16(const op_case *c, rng *r) {
  float *inputs[MAX_INPUTS], *grads[2][MAX_INPUTS], *output[2];
  for (int i = 0; i < c->input_count; i++) {
    inputs[i] = fp_malloc(c->input_sizes[i] * sizeof *inputs[i]);
    for (size_t k = 0; k < c->input_sizes[i]; k++)
      inputs[i][k] = round_to_bf16((float)rng_normal(r));
    for (int p = 0; p < 2; p++) grads[p][i] = fp_calloc(c->input_sizes[i], sizeof *grads[p][i]);
  }
  float *weights = fp_malloc(c->output_size * sizeof *weights);
  for (size_t k = 0; k < c->output_size; k++)
    weights[k] = c->output_size == 1 ? 1.0f : round_to_bf16((float)rng_normal(r));
  for (int p = 0; p < 2; p++) output[p] = fp_malloc(c->output_size * sizeof *output[p]);
  run_in(FP_F32, c, inputs, weights, output[0], grads[0]);
  run_in(FP_BF16, c, inputs, weights, output[1], grads[1]);
  double worst = max_relative_error(output[1], output[0], c->output_size);
  const char *worst_name = "output";
  for (int i = 0; i < c->input_count; i++) {
    double error = max_relative_error(grads[1][i], grads[0][i], c->input_sizes[i]);
    if (error > worst) {
      worst = error;
      worst_name = c->input_names[i];
    }
  }
  int failed = !(worst <= 1e-2);
  printf("%-36s bf16 vs f32: worst %.2e (%s) %s\n", c->name, worst, worst_name,
         failed ? "FAIL" : "ok");
  for (int i = 0; i < c->input_count; i++) {
    free(inputs[i]);
    for (int p = 0; p < 2; p++) free(grads[p][i]);
  }
  for (int p = 0; p < 2; p++) free(output[p]);
  free(weights);
  return failed;
}

int gradcheck_run(op_case *cases, int count, void (*prepare)(const op_case *c), rng *r) {
  int failures = 0;
  for (int i = 0; i < count; i++) {
    if (prepare) prepare(&cases[i]);
    failures += check_case(&cases[i], r) > 0;
  }
  printf("gradcheck: %d passed, %d failed\n", count - failures, failures);
  char why[256];
  int bf16_failures = 0;
  if (be->dtype_support(FP_BF16, why, sizeof why) != DTYPE_NOT_NATIVE) {
    for (int i = 0; i < count; i++) {
      if (prepare) prepare(&cases[i]);
      bf16_failures += compare_bf16(&cases[i], r);
    }
    printf("bf16: %d passed, %d failed\n", count - bf16_failures, bf16_failures);
  } else {
    printf("bf16: not checked: %s\n", why);
  }
  int reference = be->reference_primitive_count();
  if (reference) printf("%d primitives fell back to oneDNN's reference code\n", reference);
  return failures + bf16_failures + reference;
}
