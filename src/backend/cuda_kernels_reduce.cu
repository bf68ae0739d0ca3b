/* CUDA backend kernels that reduce: per-channel sums, batch norm, the weighted softmax
 * cross-entropy, argmax and softmax over channels, parse_catalog's class sums, the gradient
 * norm and Adam
 * (cuda_kernels.h). Sums are accumulated in double in registers, reduced within a block and
 * added across blocks with one double atomicAdd per block into a scratch buffer the launcher
 * zeroes first; small finalising kernels turn them into the float32 (or float64 scalar)
 * outputs, so nothing ever goes through the host. Cross-block atomics make the last bits of a
 * double sum depend on block order.
 *
 * Build this file with --fmad=false: adam_update and the loss gradient must round like the CPU
 * backend's float32 expressions, which an a * b + c contracted into an FMA would not. */
#include <climits>

#include "class_sums.h"
#include "cuda_kernels_internal.cuh"

/* --------------------------------------------------- per-channel reductions */

enum reduce_mode {
  SUM_X,                 /* out[c] += sum x */
  SUM_SQUARED_DEVIATION, /* out[c] += sum (x - sums[c] / pixels)^2 */
  SUM_DY_AND_DY_XHAT     /* out[c] += sum dy, out[C + c] += sum dy * (x - mean) / sqrt(var + eps) */
};

struct channel_args {
  const void *x, *dy; /* dy: SUM_DY_AND_DY_XHAT only */
  size_t pixels;
  int channels;
  const double *sums;      /* SUM_SQUARED_DEVIATION: the per-channel sums of x */
  const float *mean, *var; /* SUM_DY_AND_DY_XHAT */
  float eps;
};

template <typename T, int MODE, typename Out>
__global__ void __launch_bounds__(TILE_C *TILE_ROWS)
    channel_reduce_kernel(channel_args a, Out *out) {
  __shared__ double part[2][TILE_ROWS][TILE_C];
  const T *x = (const T *)a.x, *dy = (const T *)a.dy;
  const int c = blockIdx.x * TILE_C + threadIdx.x;
  double s0 = 0.0, s1 = 0.0;
  if (c < a.channels) {
    if constexpr (MODE == SUM_X) {
      CHANNEL_TILE_FOR(p, a.pixels) s0 += load(x, p * a.channels + c);
    } else if constexpr (MODE == SUM_SQUARED_DEVIATION) {
      const double mean = a.sums[c] / (double)a.pixels;
      CHANNEL_TILE_FOR(p, a.pixels) {
        const double d = load(x, p * a.channels + c) - mean;
        s0 += d * d;
      }
    } else {
      const float mean = a.mean[c], inv_std = 1.0f / sqrtf(a.var[c] + a.eps);
      CHANNEL_TILE_FOR(p, a.pixels) {
        const size_t i = p * a.channels + c;
        const float g = load(dy, i);
        s0 += g;
        s1 += (double)g * ((load(x, i) - mean) * inv_std);
      }
    }
  }
  part[0][threadIdx.y][threadIdx.x] = s0;
  part[1][threadIdx.y][threadIdx.x] = s1;
  __syncthreads();
  if (threadIdx.y != 0 || c >= a.channels) return;
  for (int r = 1; r < TILE_ROWS; r++) {
    s0 += part[0][r][threadIdx.x];
    s1 += part[1][r][threadIdx.x];
  }
  atomicAdd(&out[c], (Out)s0);
  if constexpr (MODE == SUM_DY_AND_DY_XHAT) atomicAdd(&out[a.channels + c], (Out)s1);
}

void cuk_channel_sum(float *sums, const void *x, int type, size_t pixels, int channels,
                     cudaStream_t stream) {
  /* no scratch here: each block adds its double partial, rounded, to the zeroed float sums */
  CUDA_CALL(cudaMemsetAsync(sums, 0, (size_t)channels * sizeof(float), stream));
  const channel_args a = {x, NULL, pixels, channels, NULL, NULL, NULL, 0.0f};
  const dim3 grid = channel_grid(pixels, channels), block(TILE_C, TILE_ROWS);
  CUK_DISPATCH(type, T,
               channel_reduce_kernel<T, SUM_X, float><<<grid, block, 0, stream>>>(a, sums));
  CUDA_LAUNCH_CHECK();
}

/* ------------------------------------------------------------- batch norm */

/* scratch [2C] (sum x, sum (x - mean)^2) -> batch mean and biased variance */
__global__ void bn_stats_finalise_kernel(const double *scratch, size_t pixels, int channels,
                                         float *batch_mean, float *batch_var) {
  CUK_FOR(c, (size_t)channels) {
    const double count = pixels > 0 ? (double)pixels : 1.0;
    batch_mean[c] = (float)(scratch[c] / count);
    batch_var[c] = (float)(scratch[channels + c] / count);
  }
}

/* y = gamma * (x - mean) / sqrt(var + eps) + beta over the channel tiles; y may alias x */
template <typename T>
__global__ void __launch_bounds__(TILE_C *TILE_ROWS)
    bn_normalise_kernel(const T *x, T *y, size_t pixels, int channels, const float *gamma,
                        const float *beta, const float *mean, const float *var, float eps) {
  const int c = blockIdx.x * TILE_C + threadIdx.x;
  if (c >= channels) return;
  const float m = mean[c], scale = gamma[c] * (1.0f / sqrtf(var[c] + eps)), shift = beta[c];
  CHANNEL_TILE_FOR(p, pixels) {
    const size_t i = p * channels + c;
    store(y, i, scale * (load(x, i) - m) + shift);
  }
}

void cuk_bn_forward_training(const void *x, int type, size_t pixels, int channels,
                             const float *gamma, const float *beta, float eps, void *y,
                             float *batch_mean, float *batch_var, double *scratch,
                             cudaStream_t stream) {
  CUDA_CALL(cudaMemsetAsync(scratch, 0, 2 * (size_t)channels * sizeof(double), stream));
  const channel_args a = {x, NULL, pixels, channels, scratch, NULL, NULL, 0.0f};
  const dim3 grid = channel_grid(pixels, channels), block(TILE_C, TILE_ROWS);
  const unsigned finalise_blocks = cuk_blocks((size_t)channels);
  CUK_DISPATCH(type, T,
               /* two passes: the mean, then the mean square deviation from it */
               channel_reduce_kernel<T, SUM_X, double><<<grid, block, 0, stream>>>(a, scratch);
               CUDA_LAUNCH_CHECK(); channel_reduce_kernel<T, SUM_SQUARED_DEVIATION, double>
               <<<grid, block, 0, stream>>>(a, scratch + channels);
               CUDA_LAUNCH_CHECK();
               bn_stats_finalise_kernel<<<finalise_blocks, CUK_THREADS, 0, stream>>>(
                   scratch, pixels, channels, batch_mean, batch_var);
               CUDA_LAUNCH_CHECK(); bn_normalise_kernel<T>
               <<<grid, block, 0, stream>>>((const T *)x, (T *)y, pixels, channels, gamma, beta,
                                            batch_mean, batch_var, eps));
  CUDA_LAUNCH_CHECK();
}

void cuk_bn_forward_inference(const void *x, int type, size_t pixels, int channels,
                              const float *gamma, const float *beta, const float *running_mean,
                              const float *running_var, float eps, void *y, cudaStream_t stream) {
  const dim3 grid = channel_grid(pixels, channels), block(TILE_C, TILE_ROWS);
  CUK_DISPATCH(type, T,
               bn_normalise_kernel<T>
               <<<grid, block, 0, stream>>>((const T *)x, (T *)y, pixels, channels, gamma, beta,
                                            running_mean, running_var, eps));
  CUDA_LAUNCH_CHECK();
}

/* scratch [2C] (sum dy, sum dy * xhat) -> grad_beta, grad_gamma */
__global__ void bn_grads_finalise_kernel(const double *scratch, int channels, float *grad_gamma,
                                         float *grad_beta) {
  CUK_FOR(c, (size_t)channels) {
    grad_beta[c] = (float)scratch[c];
    grad_gamma[c] = (float)scratch[channels + c];
  }
}

/* dx = gamma / sqrt(var + eps) * (dy - sum dy / pixels - xhat * sum (dy xhat) / pixels) over
 * the channel tiles; dx may alias dy (and x) */
template <typename T>
__global__ void __launch_bounds__(TILE_C *TILE_ROWS)
    bn_backward_data_kernel(const T *x, const T *dy, T *dx, size_t pixels, int channels,
                            const float *gamma, const float *mean, const float *var, float eps,
                            const double *scratch) {
  const int c = blockIdx.x * TILE_C + threadIdx.x;
  if (c >= channels) return;
  const float m = mean[c], inv_std = 1.0f / sqrtf(var[c] + eps), scale = gamma[c] * inv_std;
  const double count = pixels > 0 ? (double)pixels : 1.0;
  const float mean_dy = (float)(scratch[c] / count);
  const float mean_dy_xhat = (float)(scratch[channels + c] / count);
  CHANNEL_TILE_FOR(p, pixels) {
    const size_t i = p * channels + c;
    const float xhat = (load(x, i) - m) * inv_std;
    store(dx, i, scale * (load(dy, i) - mean_dy - xhat * mean_dy_xhat));
  }
}

void cuk_bn_backward(const void *x, const void *dy, int type, size_t pixels, int channels,
                     const float *gamma, const float *batch_mean, const float *batch_var, float eps,
                     void *dx, float *grad_gamma, float *grad_beta, double *scratch,
                     cudaStream_t stream) {
  CUDA_CALL(cudaMemsetAsync(scratch, 0, 2 * (size_t)channels * sizeof(double), stream));
  const channel_args a = {x, dy, pixels, channels, NULL, batch_mean, batch_var, eps};
  const dim3 grid = channel_grid(pixels, channels), block(TILE_C, TILE_ROWS);
  const unsigned finalise_blocks = cuk_blocks((size_t)channels);
  CUK_DISPATCH(
      type, T,
      channel_reduce_kernel<T, SUM_DY_AND_DY_XHAT, double><<<grid, block, 0, stream>>>(a, scratch);
      CUDA_LAUNCH_CHECK(); bn_grads_finalise_kernel<<<finalise_blocks, CUK_THREADS, 0, stream>>>(
          scratch, channels, grad_gamma, grad_beta);
      CUDA_LAUNCH_CHECK(); bn_backward_data_kernel<T>
      <<<grid, block, 0, stream>>>((const T *)x, (const T *)dy, (T *)dx, pixels, channels, gamma,
                                   batch_mean, batch_var, eps, scratch));
  CUDA_LAUNCH_CHECK();
}

/* as cpu_batchnorm_update_running; unbias = count / (count - 1) rounded to float */
__global__ void bn_update_running_kernel(float *running_mean, float *running_var,
                                         const float *batch_mean, const float *batch_var,
                                         int channels, float momentum, float unbias) {
  CUK_FOR(c, (size_t)channels) {
    running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * batch_mean[c];
    running_var[c] = (1.0f - momentum) * running_var[c] + momentum * batch_var[c] * unbias;
  }
}

void cuk_bn_update_running(float *running_mean, float *running_var, const float *batch_mean,
                           const float *batch_var, int channels, float momentum,
                           size_t count_per_channel, cudaStream_t stream) {
  const float unbias =
      count_per_channel > 1 ? (float)count_per_channel / (float)(count_per_channel - 1) : 1.0f;
  bn_update_running_kernel<<<cuk_blocks((size_t)channels), CUK_THREADS, 0, stream>>>(
      running_mean, running_var, batch_mean, batch_var, channels, momentum, unbias);
  CUDA_LAUNCH_CHECK();
}

/* as cpu_batchnorm_sync_moments */
__global__ void bn_sync_moments_kernel(float *batch_mean, float *batch_var,
                                       const float *global_mean, int channels) {
  CUK_FOR(c, (size_t)channels) {
    float offset = batch_mean[c] - global_mean[c];
    batch_var[c] += offset * offset;
    batch_mean[c] = global_mean[c];
  }
}

void cuk_bn_sync_moments(float *batch_mean, float *batch_var, const float *global_mean,
                         int channels, cudaStream_t stream) {
  bn_sync_moments_kernel<<<cuk_blocks((size_t)channels), CUK_THREADS, 0, stream>>>(
      batch_mean, batch_var, global_mean, channels);
  CUDA_LAUNCH_CHECK();
}

/* as cpu_batchnorm_sync_backward_terms */
__global__ void bn_sync_backward_terms_kernel(const float *grad_gamma, const float *grad_beta,
                                              const float *mean_grads, const float *gamma,
                                              const float *batch_var, float eps, float count,
                                              int channels, float *scale, float *shift) {
  CUK_FOR(c, (size_t)channels) {
    float gamma_over_sigma = gamma[c] / sqrtf(batch_var[c] + eps);
    scale[c] = gamma_over_sigma * ((grad_gamma[c] - mean_grads[c]) / count);
    shift[c] = gamma_over_sigma * ((grad_beta[c] - mean_grads[channels + c]) / count);
  }
}

void cuk_bn_sync_backward_terms(const float *grad_gamma, const float *grad_beta,
                                const float *mean_grads, const float *gamma, const float *batch_var,
                                float eps, size_t count_per_channel, int channels, float *scale,
                                float *shift, cudaStream_t stream) {
  bn_sync_backward_terms_kernel<<<cuk_blocks((size_t)channels), CUK_THREADS, 0, stream>>>(
      grad_gamma, grad_beta, mean_grads, gamma, batch_var, eps, (float)count_per_channel, channels,
      scale, shift);
  CUDA_LAUNCH_CHECK();
}

/* ------------------------------------------------------------------ loss */

/* The maximum logit of one pixel and the sum of exp(x - max), in float32 in the CPU backend's
 * order (fmaxf, so a NaN logit does not become the maximum). */
template <typename T>
__device__ void softmax_stats(const T *x, int classes, float *max_out, float *sum_out) {
  float m = load(x, 0);
  for (int k = 1; k < classes; k++) m = fmaxf(m, load(x, k));
  float sum = 0.0f;
  for (int k = 0; k < classes; k++) sum += expf(load(x, k) - m);
  *max_out = m;
  *sum_out = sum;
}

struct loss_args {
  const uint8_t *labels;
  const float *class_weights;
  size_t pixels;
  int classes, ignore_label;
};

/* One thread per pixel: scratch[0] += sum w[t] * nll, scratch[1] += sum w[t] over labelled
 * pixels; labels outside the classes (not ignore_label) are counted in *bad_labels. */
template <typename T>
__global__ void loss_kernel(const T *logits, loss_args a, double *scratch, int *bad_labels) {
  double weighted_nll = 0.0, weight_sum = 0.0;
  int bad = 0;
  CUK_FOR(p, a.pixels) {
    const int t = a.labels[p];
    if (t == a.ignore_label) continue;
    if (t >= a.classes) {
      bad++;
      continue;
    }
    const T *x = logits + p * a.classes;
    float m, sum;
    softmax_stats(x, a.classes, &m, &sum);
    const float w = a.class_weights[t], nll = logf(sum) - (load(x, t) - m);
    weighted_nll += (double)w * nll;
    weight_sum += w;
  }
  if (bad) atomicAdd(bad_labels, bad);
  weighted_nll = block_sum(weighted_nll);
  weight_sum = block_sum(weight_sum);
  if (threadIdx.x == 0) {
    atomicAdd(&scratch[0], weighted_nll);
    atomicAdd(&scratch[1], weight_sum);
  }
}

__global__ void loss_finalise_kernel(const double *scratch, const int *bad_labels,
                                     double *scalars) {
  const double weight_sum = scratch[1];
  scalars[SCALAR_LOSS] = weight_sum > 0.0 ? scratch[0] / weight_sum : 0.0;
  scalars[SCALAR_LOSS_WEIGHT] = weight_sum;
  scalars[SCALAR_BAD_LABELS] = (double)*bad_labels;
}

/* One thread per pixel: grad = w * softmax, minus w at the label, times the rounded 1 / sum w,
 * then times grad_scale (times *grad_factor, one float32 product, when given), each step a
 * float32 rounding as in cpu_softmax_cross_entropy. Ignored
 * and bad labels have w = 0. grad may alias logits: each logit is read before its gradient is
 * written, by the same thread. */
template <typename T>
__global__ void loss_grad_kernel(const T *logits, loss_args a, float grad_scale,
                                 const float *grad_factor, const double *scratch, T *grad) {
  if (grad_factor) grad_scale *= *grad_factor;
  const double weight_sum = scratch[1];
  const float factor = weight_sum > 0.0 ? (float)(1.0 / weight_sum) : 0.0f;
  CUK_FOR(p, a.pixels) {
    const int t = a.labels[p];
    const bool labelled = t != a.ignore_label && t < a.classes;
    const float w = labelled ? a.class_weights[t] : 0.0f;
    const T *x = logits + p * a.classes;
    T *g = grad + p * a.classes;
    float m, sum;
    softmax_stats(x, a.classes, &m, &sum);
    for (int k = 0; k < a.classes; k++) {
      float v = w * (expf(load(x, k) - m) / sum);
      if (labelled && k == t) v -= w;
      v *= factor;
      if (grad_scale != 1.0f) v *= grad_scale;
      store(g, k, v);
    }
  }
}

void cuk_softmax_cross_entropy(const void *logits, int type, size_t pixels, int classes,
                               const uint8_t *labels, const float *class_weights, int ignore_label,
                               float grad_scale, const float *grad_factor, void *grad,
                               double *scalars, double *scratch, int *bad_labels,
                               cudaStream_t stream) {
  CUDA_CALL(cudaMemsetAsync(scratch, 0, 2 * sizeof(double), stream));
  CUDA_CALL(cudaMemsetAsync(bad_labels, 0, sizeof(int), stream));
  const loss_args a = {labels, class_weights, pixels, classes, ignore_label};
  const unsigned blocks = cuk_blocks(pixels);
  CUK_DISPATCH(
      type, T,
      loss_kernel<T><<<blocks, CUK_THREADS, 0, stream>>>((const T *)logits, a, scratch, bad_labels);
      CUDA_LAUNCH_CHECK(); loss_finalise_kernel<<<1, 1, 0, stream>>>(scratch, bad_labels, scalars);
      CUDA_LAUNCH_CHECK(); if (grad) {
        loss_grad_kernel<T><<<blocks, CUK_THREADS, 0, stream>>>((const T *)logits, a, grad_scale,
                                                                grad_factor, scratch, (T *)grad);
        CUDA_LAUNCH_CHECK();
      });
}

/* ---------------------------------------------------------------- argmax */

/* the first index of the largest logit (strict >) and, where confidence is not NULL, its
 * softmax probability; one thread per pixel */
template <typename T>
__global__ void argmax_kernel(const T *logits, size_t pixels, int classes, uint8_t *out,
                              float *confidence) {
  CUK_FOR(p, pixels) {
    const T *x = logits + p * classes;
    int best = 0;
    float best_value = load(x, 0);
    for (int k = 1; k < classes; k++) {
      const float v = load(x, k);
      if (v > best_value) {
        best = k;
        best_value = v;
      }
    }
    out[p] = (uint8_t)best;
    if (!confidence) continue;
    float sum = 0.0f;
    for (int k = 0; k < classes; k++) sum += expf(load(x, k) - best_value);
    confidence[p] = 1.0f / sum;
  }
}

void cuk_argmax_channels(const void *logits, int type, size_t pixels, int classes,
                         uint8_t *predictions, float *confidence, cudaStream_t stream) {
  CUK_DISPATCH(type, T,
               argmax_kernel<T><<<cuk_blocks(pixels), CUK_THREADS, 0, stream>>>(
                   (const T *)logits, pixels, classes, predictions, confidence));
  CUDA_LAUNCH_CHECK();
}

/* parse_catalog's class sums (class_sums.h): one block per image, each class's running sums in
 * shared memory (double atomics; the extents as int minima, the ends negated) */
__global__ void class_statistics_kernel(uint8_t *predictions, const float *confidence,
                                        const uint8_t *photos, const float *boxes,
                                        const float *linear, int height, int width, int classes,
                                        uint8_t outside_label, double *sums) {
  extern __shared__ double shared[];
  double *totals = shared;                                      /* [classes][5] */
  int *extents = reinterpret_cast<int *>(shared + classes * 5); /* [classes][4] */
  for (int i = threadIdx.x; i < classes * 5; i += blockDim.x) totals[i] = 0.0;
  for (int i = threadIdx.x; i < classes * 4; i += blockDim.x) extents[i] = INT_MAX;
  __syncthreads();
  const int b = blockIdx.x;
  const float *box = boxes + (size_t)b * 4;
  const int top = (int)box[0], left = (int)box[1], bottom = (int)box[2], right = (int)box[3];
  const size_t plane = (size_t)height * width;
  uint8_t *prediction = predictions + b * plane;
  for (size_t p = threadIdx.x; p < plane; p += blockDim.x) {
    const int y = (int)(p / width), x = (int)(p % width);
    if (y < top || y >= bottom || x < left || x >= right) {
      prediction[p] = outside_label;
      continue;
    }
    const int k = prediction[p];
    if (k >= classes) continue; /* argmax_channels' predictions never are */
    double *total = totals + k * 5;
    atomicAdd(total, 1.0);
    atomicAdd(total + 1, (double)confidence[b * plane + p]);
    const uint8_t *rgb = photos + (b * plane + p) * 3;
    for (int c = 0; c < 3; c++) atomicAdd(total + 2 + c, (double)linear[rgb[c]]);
    int *extent = extents + k * 4;
    atomicMin(extent, y);
    atomicMin(extent + 1, x);
    atomicMin(extent + 2, -(y + 1));
    atomicMin(extent + 3, -(x + 1));
  }
  __syncthreads();
  for (int k = threadIdx.x; k < classes; k += blockDim.x) {
    double *out = sums + ((size_t)b * classes + k) * CLASS_SUMS;
    const double *total = totals + k * 5;
    const int *extent = extents + k * 4;
    const int present = total[0] > 0.0;
    out[CLASS_SUM_PIXELS] = total[0];
    out[CLASS_SUM_CONFIDENCE] = total[1];
    for (int c = 0; c < 3; c++) out[CLASS_SUM_LINEAR_R + c] = total[2 + c];
    out[CLASS_SUM_TOP] = present ? extent[0] : 0;
    out[CLASS_SUM_LEFT] = present ? extent[1] : 0;
    out[CLASS_SUM_BOTTOM] = present ? -extent[2] : 0;
    out[CLASS_SUM_RIGHT] = present ? -extent[3] : 0;
  }
}

void cuk_class_statistics(uint8_t *predictions, const float *confidence, const uint8_t *photos,
                          const float *boxes, const float *linear, int batch, int height, int width,
                          int classes, uint8_t outside_label, double *sums, cudaStream_t stream) {
  const size_t shared = (size_t)classes * (5 * sizeof(double) + 4 * sizeof(int));
  class_statistics_kernel<<<batch, 1024, shared, stream>>>(
      predictions, confidence, photos, boxes, linear, height, width, classes, outside_label, sums);
  CUDA_LAUNCH_CHECK();
}

/* ------------------------------------------------------------- optimiser */

enum { NORM_MAX_BLOCKS = 1024 };

__global__ void sum_squares_kernel(const float *grads, size_t count, double *scratch) {
  double sum = 0.0;
  CUK_FOR(i, count) sum += (double)grads[i] * grads[i];
  sum = block_sum(sum);
  if (threadIdx.x == 0) atomicAdd(scratch, sum);
}

__global__ void gradient_norm_finalise_kernel(const double *scratch, double clip_norm,
                                              double loss_scale, double *scalars) {
  const double norm = sqrt(scratch[0]) / loss_scale;
  scalars[SCALAR_GRAD_NORM] = norm;
  scalars[SCALAR_NONFINITE] = isfinite(norm) ? 0.0 : 1.0;
  const double clip =
      clip_norm > 0.0 && norm > clip_norm ? (double)(float)(clip_norm / (norm + 1e-6)) : 1.0;
  scalars[SCALAR_CLIP_FACTOR] = clip / loss_scale;
}

void cuk_gradient_norm(const float *grads, size_t count, double clip_norm, double loss_scale,
                       double *scalars, double *scratch, cudaStream_t stream) {
  CUDA_CALL(cudaMemsetAsync(scratch, 0, sizeof(double), stream));
  unsigned blocks = cuk_blocks(count);
  if (blocks > NORM_MAX_BLOCKS) blocks = NORM_MAX_BLOCKS;
  sum_squares_kernel<<<blocks, CUK_THREADS, 0, stream>>>(grads, count, scratch);
  CUDA_LAUNCH_CHECK();
  gradient_norm_finalise_kernel<<<1, 1, 0, stream>>>(scratch, clip_norm, loss_scale, scalars);
  CUDA_LAUNCH_CHECK();
}

/* powf as the CPU backend gets it from glibc (correctly rounded but in rare cases): pow in
 * double rounded once to float. CUDA's powf may be off by a few ulp, which would shift
 * bias_correction and so every update by an ulp. */
__device__ __forceinline__ float pow_f32(float x, float y) {
  return (float)pow((double)x, (double)y);
}

struct adam_args {
  float beta1, beta2, eps, weight_decay;
  int decoupled;
};

/* The per-step constants of cpu_adam_update, computed once per block. */
struct adam_step {
  float step_size, bias_correction2_sqrt, decay, l2, clip;
  int clipped, skipped;
};

/* cpu_adam_update's float32 arithmetic, in the same order (no FMA: see the top of the file) */
__global__ void adam_kernel(float *params, const float *grads, float *exp_avg, float *exp_avg_sq,
                            size_t count, adam_args a, const double *scalars) {
  __shared__ adam_step s;
  if (threadIdx.x == 0) {
    const float lr = (float)scalars[SCALAR_LR], clip = (float)scalars[SCALAR_CLIP_FACTOR];
    const float step = (float)scalars[SCALAR_STEP];
    const float bias_correction1 = 1.0f - pow_f32(a.beta1, step);
    s.bias_correction2_sqrt = sqrtf(1.0f - pow_f32(a.beta2, step));
    s.step_size = lr / bias_correction1;
    s.decay = a.decoupled ? 1.0f - lr * a.weight_decay : 1.0f;
    s.l2 = a.decoupled ? 0.0f : a.weight_decay;
    s.clip = clip;
    s.clipped = clip != 1.0f;
    s.skipped = scalars[SCALAR_NONFINITE] != 0.0;
  }
  __syncthreads();
  if (s.skipped) return;
  const float beta1 = a.beta1, beta2 = a.beta2, eps = a.eps;
  CUK_FOR(i, count) {
    float p = params[i] * s.decay;
    float g = (s.clipped ? grads[i] * s.clip : grads[i]) + s.l2 * params[i];
    float m = exp_avg[i] * beta1 + (1.0f - beta1) * g;
    float v = exp_avg_sq[i] * beta2 + (1.0f - beta2) * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    params[i] = p - s.step_size * (m / (sqrtf(v) / s.bias_correction2_sqrt + eps));
  }
}

void cuk_adam_update(float *params, const float *grads, float *exp_avg, float *exp_avg_sq,
                     size_t count, float beta1, float beta2, float eps, float weight_decay,
                     int decoupled_weight_decay, const double *scalars, cudaStream_t stream) {
  const adam_args a = {beta1, beta2, eps, weight_decay, decoupled_weight_decay};
  adam_kernel<<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(params, grads, exp_avg, exp_avg_sq,
                                                             count, a, scalars);
  CUDA_LAUNCH_CHECK();
}
