/* cuDNN convolutions and the cuBLAS product for the CUDA emulator, written from the libraries'
 * documented semantics as plain loops (float accumulation, like the libraries' f32 compute
 * type): a reference for the code that calls them, not a model of their speed or algorithms.
 * Every operand is checked to lie inside a device allocation of the size its descriptor
 * implies, and the workspace to be as large as the algorithm search said. */
#include <cstring>
#include <vector>

#include "cublas_v2.h"
#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "cudnn.h"
#include "emulator_internal.h"

struct emu_cudnn {
  cudaStream_t stream;
};
struct emu_cublas {
  cudaStream_t stream;
};
struct emu_tensor_desc {
  int set, nhwc;
  cudnnDataType_t type;
  int n, c, h, w; /* a filter's k, c, r, s */
};
struct emu_conv_desc {
  int set, pad_h, pad_w, u, v, dilation_h, dilation_w;
  cudnnMathType_t math;
};

namespace {

/* what each search result says its algorithm needs: the call is checked to get at least this */
const size_t WORKSPACE_BYTES = 4096;

size_t element_bytes(cudnnDataType_t type) {
  return type == CUDNN_DATA_FLOAT ? 4 : 2;
}

size_t count_of(const emu_tensor_desc &d) {
  return (size_t)d.n * d.c * d.h * d.w;
}

float load(const void *p, cudnnDataType_t type, size_t i) {
  switch (type) {
  case CUDNN_DATA_FLOAT:
    return ((const float *)p)[i];
  case CUDNN_DATA_BFLOAT16:
    return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
  case CUDNN_DATA_HALF:
    return __half2float(((const __half *)p)[i]);
  }
  emu::fatal("cuDNN: data type %d", (int)type);
}

void store(void *p, cudnnDataType_t type, size_t i, float v) {
  switch (type) {
  case CUDNN_DATA_FLOAT:
    ((float *)p)[i] = v;
    return;
  case CUDNN_DATA_BFLOAT16:
    ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
    return;
  case CUDNN_DATA_HALF:
    ((__half *)p)[i] = __float2half_rn(v);
    return;
  }
  emu::fatal("cuDNN: data type %d", (int)type);
}

std::vector<float> floats_of(const void *p, const emu_tensor_desc &d, const char *what) {
  emu::check_device_range(p, count_of(d) * element_bytes(d.type), what);
  std::vector<float> out(count_of(d));
  for (size_t i = 0; i < out.size(); i++) out[i] = load(p, d.type, i);
  return out;
}

/* out = alpha * result + beta * out, beta 0 not reading out (it may be garbage) */
void blend(void *out, const emu_tensor_desc &d, const std::vector<float> &result, float alpha,
           float beta, const char *what) {
  emu::check_device_range(out, count_of(d) * element_bytes(d.type), what);
  for (size_t i = 0; i < result.size(); i++) {
    float v = alpha * result[i];
    if (beta != 0.0f) v += beta * load(out, d.type, i);
    store(out, d.type, i, v);
  }
}

/* The geometry shared by the three directions, checked against the descriptors. */
struct conv_shape {
  int n, c, h, w, k, r, s, oh, ow;
  emu_conv_desc conv;
};

conv_shape shape_of(const emu_tensor_desc &x, const emu_tensor_desc &f, const emu_conv_desc &conv,
                    const emu_tensor_desc &y) {
  if (!x.set || !f.set || !y.set || !conv.set) emu::fatal("cuDNN: a descriptor was never set");
  if (!x.nhwc || !f.nhwc || !y.nhwc) emu::fatal("cuDNN: only NHWC tensors and filters emulated");
  if (x.type != f.type || x.type != y.type)
    emu::fatal("cuDNN: x, w and y types differ (%d, %d, %d)", x.type, f.type, y.type);
  conv_shape s = {x.n, x.c, x.h, x.w, f.n, f.h, f.w, 0, 0, conv};
  s.oh = (x.h + 2 * conv.pad_h - conv.dilation_h * (f.h - 1) - 1) / conv.u + 1;
  s.ow = (x.w + 2 * conv.pad_w - conv.dilation_w * (f.w - 1) - 1) / conv.v + 1;
  if (f.c != x.c || y.n != x.n || y.c != f.n || y.h != s.oh || y.w != s.ow)
    emu::fatal("cuDNN: x %dx%dx%dx%d, w %dx%dx%dx%d and y %dx%dx%dx%d do not fit", x.n, x.c, x.h,
               x.w, f.n, f.c, f.h, f.w, y.n, y.c, y.h, y.w);
  return s;
}

/* calls f(x index, w index, y index) for every pair of an output pixel and a filter tap inside
 * the input, over the output rows [row0, row1) (row = n * OH + oh) and output channels
 * [k0, k1): y[n, oh, ow, k] += sum_c x[n, ih, iw, c] * w[k, r, s, c] */
template <typename F>
void for_each_tap(const conv_shape &s, int row0, int row1, int k0, int k1, F f) {
  for (int row = row0; row < row1; row++) {
    const int n = row / s.oh, oh = row % s.oh;
    for (int ow = 0; ow < s.ow; ow++)
      for (int r = 0; r < s.r; r++) {
        const int ih = oh * s.conv.u - s.conv.pad_h + r * s.conv.dilation_h;
        if (ih < 0 || ih >= s.h) continue;
        for (int t = 0; t < s.s; t++) {
          const int iw = ow * s.conv.v - s.conv.pad_w + t * s.conv.dilation_w;
          if (iw < 0 || iw >= s.w) continue;
          const size_t xi = (((size_t)n * s.h + ih) * s.w + iw) * s.c;
          const size_t yi = (((size_t)n * s.oh + oh) * s.ow + ow) * s.k;
          for (int k = k0; k < k1; k++) f(xi, (((size_t)k * s.r + r) * s.s + t) * s.c, yi + k);
        }
      }
  }
}

/* The three directions' sums over C-long rows; each thread writes its own output rows
 * (forward), images (backward data: a row's taps overlap the next row's inputs) or output
 * channels (backward filter). */
void forward_sums(const conv_shape &s, const float *x, const float *w, float *y) {
  /* the weights as [r][s][c][k]: the innermost loop runs over the output channels */
  std::vector<float> transposed((size_t)s.k * s.r * s.s * s.c);
  for (int k = 0; k < s.k; k++)
    for (size_t tap = 0; tap < (size_t)s.r * s.s * s.c; tap++)
      transposed[tap * s.k + k] = w[(size_t)k * s.r * s.s * s.c + tap];
  const float *wt = transposed.data();
  const int c = s.c, k = s.k, rows = s.n * s.oh;
#pragma omp parallel for schedule(static)
  for (int row = 0; row < rows; row++)
    for_each_tap(s, row, row + 1, 0, 1, [=](size_t xi, size_t wi, size_t yi) {
      float *out = y + yi;
      for (int i = 0; i < c; i++) {
        const float v = x[xi + i], *taps = wt + (wi + i) * k;
#pragma omp simd
        for (int j = 0; j < k; j++) out[j] += v * taps[j];
      }
    });
}

void backward_data_sums(const conv_shape &s, const float *dy, const float *w, float *dx) {
  const int c = s.c;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < s.n; n++)
    for_each_tap(s, n * s.oh, (n + 1) * s.oh, 0, s.k, [=](size_t xi, size_t wi, size_t yi) {
      float *out = dx + xi;
      const float *b = w + wi, g = dy[yi];
#pragma omp simd
      for (int i = 0; i < c; i++) out[i] += g * b[i];
    });
}

void backward_filter_sums(const conv_shape &s, const float *x, const float *dy, float *dw) {
  const int c = s.c;
#pragma omp parallel for schedule(static)
  for (int k = 0; k < s.k; k++)
    for_each_tap(s, 0, s.n * s.oh, k, k + 1, [=](size_t xi, size_t wi, size_t yi) {
      float *out = dw + wi;
      const float *a = x + xi, g = dy[yi];
#pragma omp simd
      for (int i = 0; i < c; i++) out[i] += g * a[i];
    });
}

void check_workspace(const void *workspace, size_t bytes, const char *what) {
  if (bytes < WORKSPACE_BYTES)
    emu::fatal("%s: %zu workspace bytes, the search said %zu", what, bytes, WORKSPACE_BYTES);
  emu::check_device_range(workspace, WORKSPACE_BYTES, what);
}

void check_math(const emu_conv_desc &conv, cudnnDataType_t type, const char *what) {
  if (type == CUDNN_DATA_FLOAT && conv.math != CUDNN_FMA_MATH && conv.math != CUDNN_DEFAULT_MATH)
    emu::fatal("%s: f32 convolution with math type %d (Tensor Cores would round to TF32)", what,
               (int)conv.math);
}

template <typename Perf>
void fill_results(Perf *results, int requested, int *returned, const int *algos, int count,
                  cudnnMathType_t math) {
  *returned = count < requested ? count : requested;
  for (int i = 0; i < *returned; i++) {
    memset(&results[i], 0, sizeof results[i]);
    results[i].algo = (decltype(results[i].algo))algos[i];
    results[i].status = CUDNN_STATUS_SUCCESS;
    results[i].time = 1.0f + (float)i;
    results[i].memory = WORKSPACE_BYTES;
    results[i].determinism = CUDNN_DETERMINISTIC;
    results[i].mathType = math;
  }
}

float scalar(const void *p) {
  return *(const float *)p;
}

/* an operand: its descriptor (by value: the call's) and its device memory */
struct operand {
  emu_tensor_desc desc;
  const void *data;
};

typedef void (*direction_sums)(const conv_shape &, const float *, const float *, float *);

/* Checks a direction's call and queues it: out = alpha * sums(first, second) + beta * out. */
void queue_convolution(const char *call, cudnnHandle_t handle, const conv_shape &s, operand first,
                       operand second, operand out, const void *alpha, const void *beta,
                       const void *workspace, size_t workspace_bytes, direction_sums sums) {
  check_workspace(workspace, workspace_bytes, call);
  check_math(s.conv, first.desc.type, call);
  const float a = scalar(alpha), b = scalar(beta);
  emu::queue(handle->stream, [=]() {
    std::vector<float> first_values = floats_of(first.data, first.desc, call);
    std::vector<float> second_values = floats_of(second.data, second.desc, call);
    std::vector<float> result(count_of(out.desc), 0.0f);
    sums(s, first_values.data(), second_values.data(), result.data());
    blend((void *)out.data, out.desc, result, a, b, call);
  });
}

} // namespace

extern "C" {

const char *cudnnGetErrorString(cudnnStatus_t status) {
  return status == CUDNN_STATUS_SUCCESS ? "CUDNN_STATUS_SUCCESS" : "CUDNN_STATUS_BAD_PARAM";
}

void cudnnGetLastErrorString(char *message, size_t max_size) {
  if (max_size) message[0] = 0;
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *handle) {
  *handle = new emu_cudnn{nullptr};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t stream) {
  handle->stream = stream;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *desc) {
  *desc = new emu_tensor_desc{};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t desc) {
  delete desc;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t desc, cudnnTensorFormat_t format,
                                         cudnnDataType_t type, int n, int c, int h, int w) {
  if (n <= 0 || c <= 0 || h <= 0 || w <= 0) return CUDNN_STATUS_BAD_PARAM;
  *desc = emu_tensor_desc{1, format == CUDNN_TENSOR_NHWC, type, n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *desc) {
  return cudnnCreateTensorDescriptor(desc);
}

cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t desc) {
  return cudnnDestroyTensorDescriptor(desc);
}

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t desc, cudnnDataType_t type,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w) {
  return cudnnSetTensor4dDescriptor(desc, format, type, k, c, h, w);
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *desc) {
  *desc = new emu_conv_desc{};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t desc) {
  delete desc;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t desc, int pad_h,
                                              int pad_w, int u, int v, int dilation_h,
                                              int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t compute_type) {
  if (mode != CUDNN_CROSS_CORRELATION || compute_type != CUDNN_DATA_FLOAT || u <= 0 || v <= 0 ||
      dilation_h <= 0 || dilation_w <= 0 || pad_h < 0 || pad_w < 0)
    return CUDNN_STATUS_BAD_PARAM;
  *desc = emu_conv_desc{1, pad_h, pad_w, u, v, dilation_h, dilation_w, CUDNN_DEFAULT_MATH};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t desc, cudnnMathType_t math) {
  desc->math = math;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(cudnnConvolutionDescriptor_t conv,
                                                    cudnnTensorDescriptor_t x,
                                                    cudnnFilterDescriptor_t w, int *n, int *c,
                                                    int *h, int *w_out) {
  *n = x->n;
  *c = w->n;
  *h = (x->h + 2 * conv->pad_h - conv->dilation_h * (w->h - 1) - 1) / conv->u + 1;
  *w_out = (x->w + 2 * conv->pad_w - conv->dilation_w * (w->w - 1) - 1) / conv->v + 1;
  return CUDNN_STATUS_SUCCESS;
}

/* The searches report two algorithms each, the faster first, with the math type the
 * descriptor has (what the real search times them with); their results are identical here. */
cudnnStatus_t cudnnFindConvolutionForwardAlgorithm(cudnnHandle_t handle, cudnnTensorDescriptor_t x,
                                                   cudnnFilterDescriptor_t w,
                                                   cudnnConvolutionDescriptor_t conv,
                                                   cudnnTensorDescriptor_t y, int requested,
                                                   int *returned,
                                                   cudnnConvolutionFwdAlgoPerf_t *results) {
  (void)handle;
  shape_of(*x, *w, *conv, *y);
  const int algos[] = {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
                       CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM};
  fill_results(results, requested, returned, algos, 2, conv->math);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithm(
    cudnnHandle_t handle, cudnnFilterDescriptor_t w, cudnnTensorDescriptor_t dy,
    cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t dx, int requested, int *returned,
    cudnnConvolutionBwdDataAlgoPerf_t *results) {
  (void)handle;
  shape_of(*dx, *w, *conv, *dy);
  const int algos[] = {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, CUDNN_CONVOLUTION_BWD_DATA_ALGO_0};
  fill_results(results, requested, returned, algos, 2, conv->math);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithm(
    cudnnHandle_t handle, cudnnTensorDescriptor_t x, cudnnTensorDescriptor_t dy,
    cudnnConvolutionDescriptor_t conv, cudnnFilterDescriptor_t dw, int requested, int *returned,
    cudnnConvolutionBwdFilterAlgoPerf_t *results) {
  (void)handle;
  shape_of(*x, *dw, *conv, *dy);
  const int algos[] = {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0};
  fill_results(results, requested, returned, algos, 2, conv->math);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void *alpha,
                                      cudnnTensorDescriptor_t x_desc, const void *x,
                                      cudnnFilterDescriptor_t w_desc, const void *w,
                                      cudnnConvolutionDescriptor_t conv,
                                      cudnnConvolutionFwdAlgo_t algo, void *workspace,
                                      size_t workspace_bytes, const void *beta,
                                      cudnnTensorDescriptor_t y_desc, void *y) {
  (void)algo;
  const conv_shape s = shape_of(*x_desc, *w_desc, *conv, *y_desc);
  queue_convolution("cudnnConvolutionForward", handle, s, {*x_desc, x}, {*w_desc, w}, {*y_desc, y},
                    alpha, beta, workspace, workspace_bytes, forward_sums);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const void *alpha,
                                           cudnnFilterDescriptor_t w_desc, const void *w,
                                           cudnnTensorDescriptor_t dy_desc, const void *dy,
                                           cudnnConvolutionDescriptor_t conv,
                                           cudnnConvolutionBwdDataAlgo_t algo, void *workspace,
                                           size_t workspace_bytes, const void *beta,
                                           cudnnTensorDescriptor_t dx_desc, void *dx) {
  (void)algo;
  const conv_shape s = shape_of(*dx_desc, *w_desc, *conv, *dy_desc);
  queue_convolution("cudnnConvolutionBackwardData", handle, s, {*dy_desc, dy}, {*w_desc, w},
                    {*dx_desc, dx}, alpha, beta, workspace, workspace_bytes, backward_data_sums);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void *alpha,
                                             cudnnTensorDescriptor_t x_desc, const void *x,
                                             cudnnTensorDescriptor_t dy_desc, const void *dy,
                                             cudnnConvolutionDescriptor_t conv,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void *workspace,
                                             size_t workspace_bytes, const void *beta,
                                             cudnnFilterDescriptor_t dw_desc, void *dw) {
  (void)algo;
  const conv_shape s = shape_of(*x_desc, *dw_desc, *conv, *dy_desc);
  queue_convolution("cudnnConvolutionBackwardFilter", handle, s, {*x_desc, x}, {*dy_desc, dy},
                    {*dw_desc, dw}, alpha, beta, workspace, workspace_bytes, backward_filter_sums);
  return CUDNN_STATUS_SUCCESS;
}

/* ------------------------------------------------------------------ cuBLAS */

const char *cublasGetStatusString(cublasStatus_t status) {
  return status == CUBLAS_STATUS_SUCCESS ? "success" : "an invalid value";
}

const char *cublasGetStatusName(cublasStatus_t status) {
  return status == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_INVALID_VALUE";
}

cublasStatus_t cublasCreate(cublasHandle_t *handle) {
  *handle = new emu_cublas{nullptr};
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  (void)handle;
  return mode == CUBLAS_PEDANTIC_MATH || mode == CUBLAS_DEFAULT_MATH ? CUBLAS_STATUS_SUCCESS
                                                                     : CUBLAS_STATUS_NOT_SUPPORTED;
}

static cudnnDataType_t element_type(cudaDataType_t type) {
  switch (type) {
  case CUDA_R_32F:
    return CUDNN_DATA_FLOAT;
  case CUDA_R_16BF:
    return CUDNN_DATA_BFLOAT16;
  case CUDA_R_16F:
    return CUDNN_DATA_HALF;
  }
  emu::fatal("cuBLAS: data type %d", (int)type);
}

/* column-major: C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C */
cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void *alpha,
                            const void *a, cudaDataType_t a_type, int lda, const void *b,
                            cudaDataType_t b_type, int ldb, const void *beta, void *c,
                            cudaDataType_t c_type, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t algo) {
  (void)algo;
  if (compute != CUBLAS_COMPUTE_32F || m < 0 || n < 0 || k < 0 || ldc < m ||
      lda < (transa == CUBLAS_OP_N ? m : k) || ldb < (transb == CUBLAS_OP_N ? k : n))
    return CUBLAS_STATUS_INVALID_VALUE;
  const cudnnDataType_t at = element_type(a_type), bt = element_type(b_type),
                        ct = element_type(c_type);
  const size_t a_count = (size_t)lda * (transa == CUBLAS_OP_N ? k : m);
  const size_t b_count = (size_t)ldb * (transb == CUBLAS_OP_N ? n : k);
  emu::check_device_range(a, a_count * element_bytes(at), "cublasGemmEx A");
  emu::check_device_range(b, b_count * element_bytes(bt), "cublasGemmEx B");
  emu::check_device_range(c, (size_t)ldc * n * element_bytes(ct), "cublasGemmEx C");
  const float al = scalar(alpha), be = scalar(beta);
  emu::queue(handle->stream, [=]() {
    for (int j = 0; j < n; j++)
      for (int i = 0; i < m; i++) {
        float sum = 0.0f;
        for (int l = 0; l < k; l++) {
          const size_t ai = transa == CUBLAS_OP_N ? i + (size_t)l * lda : l + (size_t)i * lda;
          const size_t bi = transb == CUBLAS_OP_N ? l + (size_t)j * ldb : j + (size_t)l * ldb;
          sum += load(a, at, ai) * load(b, bt, bi);
        }
        const size_t ci = i + (size_t)j * ldc;
        float v = al * sum;
        if (be != 0.0f) v += be * load(c, ct, ci);
        store(c, ct, ci, v);
      }
  });
  return CUBLAS_STATUS_SUCCESS;
}

} /* extern "C" */
