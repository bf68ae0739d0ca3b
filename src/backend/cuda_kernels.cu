/* CUDA backend kernels: type conversion, layout changes, ReLU, add, max pooling, upsampling,
 * concat/split and global average pooling, all NHWC (cuda_kernels.h). The per-channel
 * reductions, batch norm, loss, softmax, gradient norm and Adam are in cuda_kernels_reduce.cu.
 * Element-wise kernels run one thread per output element in grid-stride loops; an output
 * element is written only by the thread that read its inputs, which makes the documented
 * aliasing (y = x, dx = dy, y = a or b) safe. */
#include "cuda_kernels_internal.cuh"

/* ------------------------------------------------------------- conversion */

template <typename D, typename S>
__global__ void convert_kernel(D *dst, const S *src, size_t count) {
  CUK_FOR(i, count) store(dst, i, load(src, i));
}

static size_t element_size(int type) {
  switch (type) {
  case FP_F32:
    return sizeof(float);
  case FP_BF16:
    return sizeof(__nv_bfloat16);
  case FP_F16:
    return sizeof(__half);
  default:
    FP_FATAL("cuk_convert: unsupported element type %d", type);
  }
}

void cuk_convert(void *dst, int dst_type, const void *src, int src_type, size_t count,
                 cudaStream_t stream) {
  if (dst_type == src_type) {
    size_t bytes = count * element_size(dst_type);
    if (bytes && dst != src)
      CUDA_CALL(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
    return;
  }
  CUK_DISPATCH(dst_type, D,
               CUK_DISPATCH(src_type, S,
                            convert_kernel<D, S><<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                                (D *)dst, (const S *)src, count)));
  CUDA_LAUNCH_CHECK();
}

/* ----------------------------------------------------------------- layout */

/* one element, converted; a plain copy when the types are the same */
template <typename D, typename S, typename I>
__device__ __forceinline__ void copy_element(D *dst, I i, const S *src, I j) {
  store(dst, i, load(src, j));
}
template <typename T, typename I>
__device__ __forceinline__ void copy_element(T *dst, I i, const T *src, I j) {
  dst[i] = src[j];
}

/* dst [n, plane, c] from src [n, c, plane], one thread per dst element (coalesced writes) */
template <typename D, typename S, typename I>
__global__ void nchw_to_nhwc_kernel(D *dst, const S *src, I c, I plane, I count) {
  CUK_FOR_INDEX(I, i, count) {
    const I ci = i % c, p = i / c; /* p = n * plane + pixel */
    copy_element(dst, i, src, (p / plane * c + ci) * plane + p % plane);
  }
}

/* dst [n, c, plane] from src [n, plane, c], one thread per dst element */
template <typename D, typename S, typename I>
__global__ void nhwc_to_nchw_kernel(D *dst, const S *src, I c, I plane, I count) {
  CUK_FOR_INDEX(I, i, count) {
    const I pixel = i % plane, q = i / plane; /* q = n * c + channel */
    copy_element(dst, i, src, (q / c * plane + pixel) * c + q % c);
  }
}

void cuk_nchw_f32_to_nhwc(void *dst, int type, const float *src, int n, int c, int h, int w,
                          cudaStream_t stream) {
  const size_t plane = (size_t)h * w, count = (size_t)n * c * plane;
  CUK_DISPATCH(type, T,
               CUK_INDEX_DISPATCH(count, I,
                                  nchw_to_nhwc_kernel<T, float, I>
                                  <<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                                      (T *)dst, src, (I)c, (I)plane, (I)count)));
  CUDA_LAUNCH_CHECK();
}

void cuk_nhwc_to_nchw_f32(float *dst, const void *src, int type, int n, int c, int h, int w,
                          cudaStream_t stream) {
  const size_t plane = (size_t)h * w, count = (size_t)n * c * plane;
  CUK_DISPATCH(type, T,
               CUK_INDEX_DISPATCH(count, I,
                                  nhwc_to_nchw_kernel<float, T, I>
                                  <<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                                      dst, (const T *)src, (I)c, (I)plane, (I)count)));
  CUDA_LAUNCH_CHECK();
}

void cuk_nhwc_to_nchw(void *dst, const void *src, int type, int n, int c, int h, int w,
                      cudaStream_t stream) {
  const size_t plane = (size_t)h * w, count = (size_t)n * c * plane;
  CUK_DISPATCH(type, T,
               CUK_INDEX_DISPATCH(count, I,
                                  nhwc_to_nchw_kernel<T, T, I>
                                  <<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                                      (T *)dst, (const T *)src, (I)c, (I)plane, (I)count)));
  CUDA_LAUNCH_CHECK();
}

void cuk_nchw_to_nhwc(void *dst, const void *src, int type, int n, int c, int h, int w,
                      cudaStream_t stream) {
  const size_t plane = (size_t)h * w, count = (size_t)n * c * plane;
  CUK_DISPATCH(type, T,
               CUK_INDEX_DISPATCH(count, I,
                                  nchw_to_nhwc_kernel<T, T, I>
                                  <<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                                      (T *)dst, (const T *)src, (I)c, (I)plane, (I)count)));
  CUDA_LAUNCH_CHECK();
}

/* Conv weights are [out, in, taps] <-> [out, taps, in] (taps = kernel * kernel): the same
 * permutations, with `out` images of `in` channels and a plane of `taps`. */
void cuk_oihw_to_ohwi(void *dst, int dst_type, const void *src, int src_type, int out, int in,
                      int kernel, cudaStream_t stream) {
  const size_t taps = (size_t)kernel * kernel, count = (size_t)out * in * taps;
  CUK_DISPATCH(
      dst_type, D,
      CUK_DISPATCH(src_type, S,
                   CUK_INDEX_DISPATCH(count, I,
                                      nchw_to_nhwc_kernel<D, S, I>
                                      <<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                                          (D *)dst, (const S *)src, (I)in, (I)taps, (I)count))));
  CUDA_LAUNCH_CHECK();
}

void cuk_ohwi_to_oihw_f32(float *dst, const void *src, int src_type, int out, int in, int kernel,
                          cudaStream_t stream) {
  const size_t taps = (size_t)kernel * kernel, count = (size_t)out * in * taps;
  CUK_DISPATCH(src_type, S,
               CUK_INDEX_DISPATCH(count, I,
                                  nhwc_to_nchw_kernel<float, S, I>
                                  <<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                                      dst, (const S *)src, (I)in, (I)taps, (I)count)));
  CUDA_LAUNCH_CHECK();
}

/* ------------------------------------------------------------- relu, add */

/* A NaN passes through (as in PyTorch and oneDNN), so the non-finite check still sees it. */
template <typename T> __global__ void relu_forward_kernel(const T *x, T *y, size_t count) {
  CUK_FOR(i, count) {
    float v = load(x, i);
    store(y, i, v > 0.0f || isnan(v) ? v : 0.0f);
  }
}

template <typename T>
__global__ void relu_backward_kernel(const T *y, const T *dy, T *dx, size_t count) {
  CUK_FOR(i, count) store(dx, i, load(y, i) > 0.0f ? load(dy, i) : 0.0f);
}

template <typename T> __global__ void add_kernel(const T *a, const T *b, T *y, size_t count) {
  CUK_FOR(i, count) store(y, i, load(a, i) + load(b, i));
}

void cuk_relu_forward(const void *x, void *y, int type, size_t count, cudaStream_t stream) {
  CUK_DISPATCH(type, T,
               relu_forward_kernel<T>
               <<<cuk_blocks(count), CUK_THREADS, 0, stream>>>((const T *)x, (T *)y, count));
  CUDA_LAUNCH_CHECK();
}

void cuk_relu_backward(const void *y, const void *dy, void *dx, int type, size_t count,
                       cudaStream_t stream) {
  CUK_DISPATCH(type, T,
               relu_backward_kernel<T><<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                   (const T *)y, (const T *)dy, (T *)dx, count));
  CUDA_LAUNCH_CHECK();
}

void cuk_add(const void *a, const void *b, void *y, int type, size_t count, cudaStream_t stream) {
  CUK_DISPATCH(type, T,
               add_kernel<T><<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                   (const T *)a, (const T *)b, (T *)y, count));
  CUDA_LAUNCH_CHECK();
}

/* y[p, c] = relu?(y[p, c] + bias[c] + residual[p, c]) over channel tiles (channel_grid); bias and
 * residual may be NULL. A NaN passes the ReLU, as in relu_forward_kernel. */
template <typename T>
__global__ void __launch_bounds__(TILE_C *TILE_ROWS)
    epilogue_kernel(T *y, const float *bias, const T *residual, int relu, size_t pixels,
                    int channels) {
  const int c = blockIdx.x * TILE_C + threadIdx.x;
  if (c >= channels) return;
  const float b = bias ? bias[c] : 0.0f;
  CHANNEL_TILE_FOR(p, pixels) {
    const size_t i = p * channels + c;
    float v = load(y, i) + b;
    if (residual) v += load(residual, i);
    store(y, i, !relu || v > 0.0f || isnan(v) ? v : 0.0f);
  }
}

void cuk_epilogue(void *y, int type, const float *bias, const void *residual, int relu,
                  size_t pixels, int channels, cudaStream_t stream) {
  const dim3 grid = channel_grid(pixels, channels), block(TILE_C, TILE_ROWS);
  CUK_DISPATCH(type, T,
               epilogue_kernel<T><<<grid, block, 0, stream>>>((T *)y, bias, (const T *)residual,
                                                              relu, pixels, channels));
  CUDA_LAUNCH_CHECK();
}

/* folded[i] = weights[i] * gamma[o] / sqrt(var[o] + eps), o = i / per_output */
template <typename T>
__global__ void bn_fold_weights_kernel(T *folded, const float *weights, const float *gamma,
                                       const float *var, float eps, size_t per_output,
                                       size_t count) {
  CUK_FOR(i, count) {
    const size_t o = i / per_output;
    store(folded, i, weights[i] * (gamma[o] / sqrtf(var[o] + eps)));
  }
}

__global__ void bn_fold_bias_kernel(float *folded_bias, const float *conv_bias, const float *gamma,
                                    const float *beta, const float *mean, const float *var,
                                    float eps, int channels) {
  CUK_FOR(o, (size_t)channels) {
    const float scale = gamma[o] / sqrtf(var[o] + eps);
    folded_bias[o] = beta[o] + ((conv_bias ? conv_bias[o] : 0.0f) - mean[o]) * scale;
  }
}

void cuk_bn_fold(void *folded_weights, int type, float *folded_bias, const float *weights,
                 const float *conv_bias, const float *gamma, const float *beta, const float *mean,
                 const float *var, float eps, int out_channels, size_t per_output,
                 cudaStream_t stream) {
  const size_t count = per_output * (size_t)out_channels;
  CUK_DISPATCH(type, T,
               bn_fold_weights_kernel<T><<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                   (T *)folded_weights, weights, gamma, var, eps, per_output, count));
  CUDA_LAUNCH_CHECK();
  bn_fold_bias_kernel<<<cuk_blocks((size_t)out_channels), CUK_THREADS, 0, stream>>>(
      folded_bias, conv_bias, gamma, beta, mean, var, eps, out_channels);
  CUDA_LAUNCH_CHECK();
}

/* ------------------------------------------------------------ max pooling */

struct pool_geometry {
  int n, c, h, w, oh, ow, kernel, stride, pad;
};

/* The maximum of output window (oy, ox) of image n, channel c, and the position (iy * w + ix)
 * holding it: the first in row-major window order (strict >), except that a NaN is taken as
 * the maximum (PyTorch's rule). Padding is skipped, i.e. counts as -inf; when every value is
 * -inf the position is the window's first inside the image, as in PyTorch. */
template <typename T, typename I>
__device__ int window_argmax(const T *x, const pool_geometry &g, I n, int oy, int ox, int c,
                             float *max_value) {
  const int y0 = oy * g.stride - g.pad, x0 = ox * g.stride - g.pad;
  int arg = max(y0, 0) * g.w + max(x0, 0);
  float best = -INFINITY;
  for (int ky = 0; ky < g.kernel; ky++) {
    const int iy = y0 + ky;
    if (iy < 0 || iy >= g.h) continue;
    for (int kx = 0; kx < g.kernel; kx++) {
      const int ix = x0 + kx;
      if (ix < 0 || ix >= g.w) continue;
      const float v = load(x, ((n * g.h + iy) * g.w + ix) * g.c + c);
      if (v > best || isnan(v)) {
        best = v;
        arg = iy * g.w + ix;
      }
    }
  }
  *max_value = best;
  return arg;
}

/* one thread per output element (n, oy, ox, c) */
template <typename T, typename I>
__global__ void maxpool_forward_kernel(const T *x, T *y, pool_geometry g, I count) {
  CUK_FOR_INDEX(I, i, count) {
    const I p = i / g.c; /* (n * oh + oy) * ow + ox */
    float best;
    window_argmax(x, g, p / g.ow / g.oh, (int)(p / g.ow % g.oh), (int)(p % g.ow), (int)(i % g.c),
                  &best);
    store(y, i, best);
  }
}

/* first output row (or column) whose window, starting at o * stride - pad, covers input i */
__device__ __forceinline__ int first_window(int i, int kernel, int stride, int pad) {
  const int lowest_start = i + pad - kernel + 1;
  return lowest_start <= 0 ? 0 : (lowest_start + stride - 1) / stride;
}

/* One thread per input element (n, iy, ix, c): the sum, over the output windows covering it,
 * of dy of those whose argmax it is (gathered, so no atomics and a fixed order). */
template <typename T, typename I>
__global__ void maxpool_backward_kernel(const T *x, const T *dy, T *dx, pool_geometry g, I count) {
  CUK_FOR_INDEX(I, i, count) {
    const int c = (int)(i % g.c);
    const I p = i / g.c, n = p / g.w / g.h; /* p = (n * h + iy) * w + ix */
    const int ix = (int)(p % g.w), iy = (int)(p / g.w % g.h);
    const int oy_end = min((iy + g.pad) / g.stride + 1, g.oh);
    const int ox_end = min((ix + g.pad) / g.stride + 1, g.ow);
    float sum = 0.0f;
    for (int oy = first_window(iy, g.kernel, g.stride, g.pad); oy < oy_end; oy++)
      for (int ox = first_window(ix, g.kernel, g.stride, g.pad); ox < ox_end; ox++) {
        float unused;
        if (window_argmax(x, g, n, oy, ox, c, &unused) == iy * g.w + ix)
          sum += load(dy, ((n * g.oh + oy) * g.ow + ox) * g.c + c);
      }
    store(dx, i, sum);
  }
}

void cuk_maxpool_forward(const void *x, void *y, int type, int n, int c, int h, int w, int oh,
                         int ow, int kernel, int stride, int pad, cudaStream_t stream) {
  const pool_geometry g = {n, c, h, w, oh, ow, kernel, stride, pad};
  const size_t count = (size_t)n * oh * ow * c, x_count = (size_t)n * h * w * c;
  CUK_DISPATCH(type, T,
               CUK_INDEX_DISPATCH(count > x_count ? count : x_count, I,
                                  maxpool_forward_kernel<T, I>
                                  <<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                                      (const T *)x, (T *)y, g, (I)count)));
  CUDA_LAUNCH_CHECK();
}

void cuk_maxpool_backward(const void *x, const void *dy, void *dx, int type, int n, int c, int h,
                          int w, int oh, int ow, int kernel, int stride, int pad,
                          cudaStream_t stream) {
  const pool_geometry g = {n, c, h, w, oh, ow, kernel, stride, pad};
  const size_t count = (size_t)n * h * w * c, dy_count = (size_t)n * oh * ow * c;
  CUK_DISPATCH(type, T,
               CUK_INDEX_DISPATCH(count > dy_count ? count : dy_count, I,
                                  maxpool_backward_kernel<T, I>
                                  <<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                                      (const T *)x, (const T *)dy, (T *)dx, g, (I)count)));
  CUDA_LAUNCH_CHECK();
}

/* ------------------------------------------------------------- upsampling */

/* y [n, 2h, 2w, c] = x [n, h, w, c] (nearest), one thread per y element; a plain copy */
template <typename T, typename I>
__global__ void upsample2x_forward_kernel(const T *x, T *y, I c, I h, I w, I count) {
  CUK_FOR_INDEX(I, i, count) {
    const I p = i / c, row = p / (2 * w); /* p = row * 2w + ox, row = n * 2h + oy */
    y[i] = x[((row / (2 * h) * h + row % (2 * h) / 2) * w + p % (2 * w) / 2) * c + i % c];
  }
}

/* dx [n, h, w, c] = the sum of its 2x2 block of dy [n, 2h, 2w, c], one thread per dx element */
template <typename T, typename I>
__global__ void upsample2x_backward_kernel(const T *dy, T *dx, I c, I w, I count) {
  CUK_FOR_INDEX(I, i, count) {
    const I p = i / c, row = p / w; /* p = row * w + ix, row = n * h + iy */
    /* dy row 2 * row holds (n, 2 iy) since n * 2h + 2 iy = 2 (n * h + iy) */
    const I top = (2 * row * 2 * w + 2 * (p % w)) * c + i % c, next_row = 2 * w * c;
    store(dx, i,
          load(dy, top) + load(dy, top + c) + load(dy, top + next_row) +
              load(dy, top + next_row + c));
  }
}

void cuk_upsample2x_forward(const void *x, void *y, int type, int n, int c, int h, int w,
                            cudaStream_t stream) {
  const size_t count = (size_t)n * c * h * w * 4;
  CUK_DISPATCH(type, T,
               CUK_INDEX_DISPATCH(count, I,
                                  upsample2x_forward_kernel<T, I>
                                  <<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                                      (const T *)x, (T *)y, (I)c, (I)h, (I)w, (I)count)));
  CUDA_LAUNCH_CHECK();
}

void cuk_upsample2x_backward(const void *dy, void *dx, int type, int n, int c, int h, int w,
                             cudaStream_t stream) {
  const size_t count = (size_t)n * c * h * w;
  CUK_DISPATCH(type, T,
               CUK_INDEX_DISPATCH(count * 4, I,
                                  upsample2x_backward_kernel<T, I>
                                  <<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                                      (const T *)dy, (T *)dx, (I)c, (I)w, (I)count)));
  CUDA_LAUNCH_CHECK();
}

/* ---------------------------------------------------------- concat / split */

/* y [p, ca + cb] from a [p, ca] and b [p, cb], one thread per y element; plain copies */
template <typename T, typename I>
__global__ void concat_kernel(const T *a, I ca, const T *b, I cb, T *y, I count) {
  CUK_FOR_INDEX(I, i, count) {
    const I p = i / (ca + cb), c = i % (ca + cb);
    y[i] = c < ca ? a[p * ca + c] : b[p * cb + (c - ca)];
  }
}

/* the reverse, one thread per dy element */
template <typename T, typename I>
__global__ void split_kernel(const T *dy, T *da, I ca, T *db, I cb, I count) {
  CUK_FOR_INDEX(I, i, count) {
    const I p = i / (ca + cb), c = i % (ca + cb);
    if (c < ca)
      da[p * ca + c] = dy[i];
    else
      db[p * cb + (c - ca)] = dy[i];
  }
}

void cuk_concat_channels(const void *a, int ca, const void *b, int cb, void *y, int type,
                         size_t pixels, cudaStream_t stream) {
  const size_t count = pixels * (size_t)(ca + cb);
  CUK_DISPATCH(type, T,
               CUK_INDEX_DISPATCH(count, I,
                                  concat_kernel<T, I>
                                  <<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                                      (const T *)a, (I)ca, (const T *)b, (I)cb, (T *)y, (I)count)));
  CUDA_LAUNCH_CHECK();
}

void cuk_split_channels(const void *dy, void *da, int ca, void *db, int cb, int type, size_t pixels,
                        cudaStream_t stream) {
  const size_t count = pixels * (size_t)(ca + cb);
  CUK_DISPATCH(type, T,
               CUK_INDEX_DISPATCH(count, I,
                                  split_kernel<T, I><<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                                      (const T *)dy, (T *)da, (I)ca, (T *)db, (I)cb, (I)count)));
  CUDA_LAUNCH_CHECK();
}

/* ----------------------------------------------------- global average pool */

/* y [n, c] = mean over the plane of x [n, plane, c]: one thread per (n, c), consecutive threads
 * on consecutive channels (coalesced), summed in double */
template <typename T>
__global__ void avgpool_forward_kernel(const T *x, T *y, int c, int plane, size_t count) {
  CUK_FOR(i, count) {
    const size_t n = i / c, ci = i % c;
    double sum = 0.0;
    for (int p = 0; p < plane; p++) sum += load(x, (n * plane + p) * c + ci);
    store(y, i, (float)(sum / plane));
  }
}

/* dx [n, plane, c] = dy [n, c] / plane, one thread per dx element */
template <typename T, typename I>
__global__ void avgpool_backward_kernel(const T *dy, T *dx, I c, I plane, I count) {
  CUK_FOR_INDEX(I, i, count) store(dx, i, load(dy, i / (plane * c) * c + i % c) / (float)plane);
}

void cuk_global_avgpool_forward(const void *x, void *y, int type, int n, int c, int plane,
                                cudaStream_t stream) {
  const size_t count = (size_t)n * c;
  CUK_DISPATCH(type, T,
               avgpool_forward_kernel<T><<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                   (const T *)x, (T *)y, c, plane, count));
  CUDA_LAUNCH_CHECK();
}

void cuk_global_avgpool_backward(const void *dy, void *dx, int type, int n, int c, int plane,
                                 cudaStream_t stream) {
  const size_t count = (size_t)n * plane * c;
  CUK_DISPATCH(type, T,
               CUK_INDEX_DISPATCH(count, I,
                                  avgpool_backward_kernel<T, I>
                                  <<<cuk_blocks(count), CUK_THREADS, 0, stream>>>(
                                      (const T *)dy, (T *)dx, (I)c, (I)plane, (I)count)));
  CUDA_LAUNCH_CHECK();
}
