/* CUDA backend kernels of the Extended U-Net branches' ops (cuda_kernels.h, backend.h): global
 * max pool, broadcasting a vector over a plane and its sum, elementwise product, sigmoid, and the
 * class-presence (sigmoid BCE) and box (sigmoid smooth-L1) losses. Their tensors are small:
 * one thread per (image, channel) or per element, sums in double. */
#include "cuda_kernels_internal.cuh"

__device__ __forceinline__ float sigmoid(float x) {
  return 1.0f / (1.0f + expf(-x));
}

/* the position in a channel's plane (stride c) of its first maximum, a NaN counting as one */
template <typename T> __device__ int plane_argmax(const T *x, int c, int plane) {
  int best = 0;
  float best_value = load(x, 0);
  for (int p = 1; p < plane && !isnan(best_value); p++) {
    const float v = load(x, (size_t)p * c);
    if (v > best_value || isnan(v)) {
      best = p;
      best_value = v;
    }
  }
  return best;
}

/* one thread per (n, c): consecutive threads on consecutive channels (coalesced) */
template <typename T>
__global__ void maxpool_global_kernel(const T *x, T *y, int c, int plane, size_t count) {
  CUK_FOR(i, count) {
    const T *channel = x + i / c * (size_t)plane * c + i % c;
    store(y, i, load(channel, (size_t)plane_argmax(channel, c, plane) * c));
  }
}

template <typename T>
__global__ void maxpool_global_backward_kernel(const T *x, const T *dy, T *dx, int c, int plane,
                                               size_t count) {
  CUK_FOR(i, count) {
    const size_t base = i / c * (size_t)plane * c + i % c;
    const int best = plane_argmax(x + base, c, plane);
    const float g = load(dy, i);
    for (int p = 0; p < plane; p++) store(dx, base + (size_t)p * c, p == best ? g : 0.0f);
  }
}

template <typename T>
__global__ void broadcast_plane_kernel(const T *x, T *y, int c, int plane, size_t count) {
  CUK_FOR(i, count) y[i] = x[i / ((size_t)plane * c) * c + i % c];
}

template <typename T>
__global__ void sum_plane_kernel(const T *dy, T *dx, int c, int plane, size_t count) {
  CUK_FOR(i, count) {
    const size_t base = i / c * (size_t)plane * c + i % c;
    double sum = 0.0;
    for (int p = 0; p < plane; p++) sum += load(dy, base + (size_t)p * c);
    store(dx, i, (float)sum);
  }
}

template <typename T> __global__ void mul_kernel(const T *a, const T *b, T *y, size_t count) {
  CUK_FOR(i, count) store(y, i, load(a, i) * load(b, i));
}

template <typename T> __global__ void sigmoid_kernel(const T *x, T *y, size_t count) {
  CUK_FOR(i, count) store(y, i, sigmoid(load(x, i)));
}

template <typename T>
__global__ void sigmoid_backward_kernel(const T *y, const T *dy, T *dx, size_t count) {
  CUK_FOR(i, count) {
    const float s = load(y, i);
    store(dx, i, load(dy, i) * s * (1.0f - s));
  }
}

void cuk_global_maxpool_forward(const void *x, void *y, int type, int n, int c, int plane,
                                cudaStream_t stream) {
  const size_t count = (size_t)n * c;
  CUK_DISPATCH(type, T,
               maxpool_global_kernel<T><<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                   (const T *)x, (T *)y, c, plane, count));
  CUDA_LAUNCH_CHECK();
}

void cuk_global_maxpool_backward(const void *x, const void *dy, void *dx, int type, int n, int c,
                                 int plane, cudaStream_t stream) {
  const size_t count = (size_t)n * c;
  CUK_DISPATCH(type, T,
               maxpool_global_backward_kernel<T><<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                   (const T *)x, (const T *)dy, (T *)dx, c, plane, count));
  CUDA_LAUNCH_CHECK();
}

void cuk_broadcast_plane(const void *x, void *y, int type, int n, int c, int plane,
                         cudaStream_t stream) {
  const size_t count = (size_t)n * c * plane;
  CUK_DISPATCH(type, T,
               broadcast_plane_kernel<T><<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                   (const T *)x, (T *)y, c, plane, count));
  CUDA_LAUNCH_CHECK();
}

void cuk_sum_plane(const void *dy, void *dx, int type, int n, int c, int plane,
                   cudaStream_t stream) {
  const size_t count = (size_t)n * c;
  CUK_DISPATCH(type, T,
               sum_plane_kernel<T><<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                   (const T *)dy, (T *)dx, c, plane, count));
  CUDA_LAUNCH_CHECK();
}

void cuk_mul(const void *a, const void *b, void *y, int type, size_t count, cudaStream_t stream) {
  CUK_DISPATCH(type, T,
               mul_kernel<T><<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                   (const T *)a, (const T *)b, (T *)y, count));
  CUDA_LAUNCH_CHECK();
}

void cuk_sigmoid_forward(const void *x, void *y, int type, size_t count, cudaStream_t stream) {
  CUK_DISPATCH(type, T,
               sigmoid_kernel<T>
               <<<cuk_blocks(count), CUK_THREADS, 0, stream>>>((const T *)x, (T *)y, count));
  CUDA_LAUNCH_CHECK();
}

void cuk_sigmoid_backward(const void *y, const void *dy, void *dx, int type, size_t count,
                          cudaStream_t stream) {
  CUK_DISPATCH(type, T,
               sigmoid_backward_kernel<T><<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                   (const T *)y, (const T *)dy, (T *)dx, count));
  CUDA_LAUNCH_CHECK();
}

/* ------------------------------------------------------------------ losses */

/* one block: the losses' vectors are N x K (x4) entries */
template <typename T>
__global__ void bce_kernel(const T *x, size_t count, const float *t, double *scratch) {
  double sum = 0.0;
  for (size_t i = threadIdx.x; i < count; i += blockDim.x) {
    const float v = load(x, i);
    sum += fmaxf(v, 0.0f) - v * t[i] + log1pf(expf(-fabsf(v)));
  }
  sum = block_sum(sum);
  if (threadIdx.x == 0) scratch[0] = sum / (double)count;
}

template <typename T>
__global__ void bce_grad_kernel(const T *x, size_t count, const float *t, float grad_scale,
                                T *grad) {
  const float scale = grad_scale / (float)count;
  CUK_FOR(i, count) store(grad, i, scale * (sigmoid(load(x, i)) - t[i]));
}

__global__ void bce_finalise_kernel(const double *scratch, double *scalars) {
  scalars[SCALAR_CLASS_LOSS] = scratch[0];
}

void cuk_sigmoid_bce(const void *logits, int type, size_t count, const float *targets,
                     float grad_scale, void *grad, double *scalars, double *scratch,
                     cudaStream_t stream) {
  CUK_DISPATCH(
      type, T, bce_kernel<T><<<1, 1024, 0, stream>>>((const T *)logits, count, targets, scratch);
      CUDA_LAUNCH_CHECK(); bce_finalise_kernel<<<1, 1, 0, stream>>>(scratch, scalars);
      CUDA_LAUNCH_CHECK(); if (grad) {
        bce_grad_kernel<T><<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
            (const T *)logits, count, targets, grad_scale, (T *)grad);
        CUDA_LAUNCH_CHECK();
      });
}

template <typename T>
__global__ void smooth_l1_kernel(const T *x, size_t count, const float *t, const float *mask,
                                 double *scratch) {
  double sum = 0.0, present = 0.0;
  for (size_t i = threadIdx.x; i < count; i += blockDim.x) {
    if (mask[i / 4] == 0.0f) continue;
    const float d = sigmoid(load(x, i)) - t[i];
    sum += fabsf(d) < 1.0f ? 0.5f * d * d : fabsf(d) - 0.5f;
    present += 1.0;
  }
  sum = block_sum(sum);
  present = block_sum(present);
  if (threadIdx.x == 0) {
    scratch[0] = present > 0.0 ? sum / present : 0.0;
    scratch[1] = present;
  }
}

template <typename T>
__global__ void smooth_l1_grad_kernel(const T *x, size_t count, const float *t, const float *mask,
                                      float grad_scale, const float *grad_factor,
                                      const double *scratch, T *grad) {
  if (grad_factor) grad_scale *= *grad_factor;
  const float scale = scratch[1] > 0.0 ? grad_scale / (float)scratch[1] : 0.0f;
  CUK_FOR(i, count) {
    const float s = sigmoid(load(x, i)), d = s - t[i];
    const float slope = fabsf(d) < 1.0f ? d : (d > 0.0f ? 1.0f : -1.0f);
    store(grad, i, mask[i / 4] == 0.0f ? 0.0f : scale * slope * s * (1.0f - s));
  }
}

__global__ void smooth_l1_finalise_kernel(const double *scratch, double *scalars) {
  scalars[SCALAR_BOX_LOSS] = scratch[0];
  scalars[SCALAR_BOX_COUNT] = scratch[1];
}

void cuk_sigmoid_smooth_l1(const void *x, int type, size_t count, const float *targets,
                           const float *mask, float grad_scale, const float *grad_factor,
                           void *grad, double *scalars, double *scratch, cudaStream_t stream) {
  CUK_DISPATCH(
      type, T,
      smooth_l1_kernel<T><<<1, 1024, 0, stream>>>((const T *)x, count, targets, mask, scratch);
      CUDA_LAUNCH_CHECK(); smooth_l1_finalise_kernel<<<1, 1, 0, stream>>>(scratch, scalars);
      CUDA_LAUNCH_CHECK(); if (grad) {
        smooth_l1_grad_kernel<T><<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
            (const T *)x, count, targets, mask, grad_scale, grad_factor, scratch, (T *)grad);
        CUDA_LAUNCH_CHECK();
      });
}
