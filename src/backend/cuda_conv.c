/* CUDA backend: convolutions on cuDNN, NHWC activations and OHWI weights (the layout cuDNN's
 * Tensor Core kernels read). The weights arrive OIHW (backend.h) and are transposed into a
 * workspace per call; their gradients come back OHWI and are transposed into the f32 OIHW
 * gradient buffer. For each shape and direction the algorithm is found once, on first use
 * (cuDNN times the candidates), and cached with the shape's descriptors.
 *
 * This is the one file that uses cuDNN's legacy convolution API, which cuDNN 9 marks deprecated
 * in favour of the graph API (still supported in cuDNN 9, see shared/notes); the deprecation
 * warning is turned off here only. f32 convolutions use CUDNN_FMA_MATH (no TF32), so f32 results
 * are f32 results; bf16 ones use Tensor Cores with f32 accumulation. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

typedef struct conv_key {
  int in_channels, out_channels, kernel, stride, pad, n, h, w, dtype;
} conv_key;

/* The three directions of a convolution, each with its own algorithm, found the first time that
 * direction runs: an inference pass never searches (nor sizes workspace for) the backward ones,
 * and a direction cuDNN has no algorithm for stops only a run that needs it (the stem's
 * backward-data is never needed). */
enum { CONV_FORWARD, CONV_BACKWARD_DATA, CONV_BACKWARD_FILTER, CONV_DIRECTIONS };
static const char *const direction_names[CONV_DIRECTIONS] = {"forward", "backward-data",
                                                             "backward-filter"};

typedef struct conv_algorithm {
  int found;
  int algo; /* a cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t, by direction */
  /* the math type set on the descriptor before the call: f32 always CUDNN_FMA_MATH (the default
   * would allow TF32 on sm_80+); 16-bit types the one cuDNN's search timed the algorithm (and
   * measured its workspace) with */
  cudnnMathType_t math;
  size_t workspace_bytes;
} conv_algorithm;

typedef struct conv_plan {
  conv_key key;
  cudnnTensorDescriptor_t x, y;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
  conv_algorithm algorithms[CONV_DIRECTIONS];
} conv_plan;

typedef struct conv_plan_cache {
  conv_plan *plans;
  int count, capacity;
} conv_plan_cache;

static cudnnDataType_t cudnn_type(fp_dtype type) {
  switch (type) {
  case FP_F32:
    return CUDNN_DATA_FLOAT;
  case FP_BF16:
    return CUDNN_DATA_BFLOAT16;
  case FP_F16:
    return CUDNN_DATA_HALF;
  default:
    FP_FATAL("cuDNN convolutions have no %s variant here", fp_dtype_name(type));
  }
}

/* FP_CONV_ALGORITHM=direct (as on the CPU backend): only the implicit-GEMM algorithms, which
 * sum in the order a direct convolution does, for the tight twin comparisons. */
static int direct_only(void) {
  const char *choice = getenv("FP_CONV_ALGORITHM");
  return choice && !strcmp(choice, "direct");
}

static int direct_algorithm(int direction, int algo) {
  switch (direction) {
  case CONV_FORWARD:
    return algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ||
           algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
  case CONV_BACKWARD_DATA:
    return algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 || algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
  default:
    return algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 ||
           algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
  }
}

/* One search result, whichever direction's perf type it came in. */
typedef struct conv_candidate {
  int algo;
  cudnnStatus_t status;
  size_t memory;
  cudnnDeterminism_t determinism;
  cudnnMathType_t math;
} conv_candidate;

enum { CONV_MAX_CANDIDATES = 8 };
_Static_assert((int)CUDNN_CONVOLUTION_FWD_ALGO_COUNT <= CONV_MAX_CANDIDATES &&
                   (int)CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT <= CONV_MAX_CANDIDATES &&
                   (int)CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT <= CONV_MAX_CANDIDATES,
               "a direction has more cuDNN algorithms than CONV_MAX_CANDIDATES");

/* A search result that may be used: it ran, and an f32 one without Tensor Cores (no TF32). */
static int usable(const conv_plan *p, const conv_candidate *c) {
  return c->status == CUDNN_STATUS_SUCCESS &&
         (p->key.dtype != FP_F32 ||
          (c->math != CUDNN_TENSOR_OP_MATH && c->math != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION));
}

/* The fastest usable candidate (cuDNN lists them fastest first). In direct mode a deterministic
 * one first: ALGO_0 of both backward directions sums with atomics, in no fixed order, and is
 * taken only where cuDNN offers no deterministic direct algorithm. */
static void choose(conv_plan *p, int direction, const conv_candidate *c, int count) {
  int direct = direct_only();
  for (int pass = 0; pass < 1 + direct; pass++)
    for (int i = 0; i < count; i++) {
      if (!usable(p, &c[i])) continue;
      if (direct && (!direct_algorithm(direction, c[i].algo) ||
                     (pass == 0 && c[i].determinism != CUDNN_DETERMINISTIC)))
        continue;
      p->algorithms[direction] = (conv_algorithm){
          1, c[i].algo, p->key.dtype == FP_F32 ? CUDNN_FMA_MATH : c[i].math, c[i].memory};
      return;
    }
  FP_FATAL("cuDNN offers no %s%s algorithm for a %dx%d convolution %d->%d on %dx%d %s",
           direct ? "direct " : "", direction_names[direction], p->key.kernel, p->key.kernel,
           p->key.in_channels, p->key.out_channels, p->key.h, p->key.w,
           fp_dtype_name((fp_dtype)p->key.dtype));
}

/* perf: cuDNN's results for one direction (its own perf struct type); out: as candidates */
#define CANDIDATES_FROM(perf, returned, out)                                                       \
  do {                                                                                             \
    for (int i = 0; i < (returned); i++)                                                           \
      (out)[i] = (conv_candidate){(int)(perf)[i].algo, (perf)[i].status, (perf)[i].memory,         \
                                  (perf)[i].determinism, (perf)[i].mathType};                      \
  } while (0)

/* The direction's algorithm, searched for (cuDNN times the candidates) on its first use. */
static const conv_algorithm *algorithm_for(conv_plan *p, int direction) {
  if (p->algorithms[direction].found) return &p->algorithms[direction];
  cuda_not_capturing("a cuDNN algorithm search (a convolution direction not run before)");
  /* the math type the search may use (the calls since may have left another one set): f32 none
   * with Tensor Cores (no TF32), 16-bit types any, each result saying which it was timed with */
  CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv, p->key.dtype == FP_F32 ? CUDNN_FMA_MATH
                                                                          : CUDNN_TENSOR_OP_MATH));
  conv_candidate candidates[CONV_MAX_CANDIDATES];
  int returned = 0;
  if (direction == CONV_FORWARD) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(
        cuda.cudnn, p->x, p->w, p->conv, p->y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf));
    CANDIDATES_FROM(perf, returned, candidates);
  } else if (direction == CONV_BACKWARD_DATA) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(cuda.cudnn, p->w, p->y, p->conv, p->x,
                                                          CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                          &returned, perf));
    CANDIDATES_FROM(perf, returned, candidates);
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(cuda.cudnn, p->x, p->y, p->conv, p->w,
                                                            CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                                                            &returned, perf));
    CANDIDATES_FROM(perf, returned, candidates);
  }
  choose(p, direction, candidates, returned);
  return &p->algorithms[direction];
}

static void plan_init(conv_plan *p, const conv_desc *d, const tensor *x) {
  memset(p, 0, sizeof *p);
  p->key = (conv_key){d->in_channels, d->out_channels, d->kernel, d->stride, d->pad, x->n, x->h,
                      x->w,           (int)x->dtype};
  cudnnDataType_t type = cudnn_type(x->dtype);
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x));
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y));
  CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->w));
  CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->conv));
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NHWC, type, x->n, x->c, x->h, x->w));
  CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w, type, CUDNN_TENSOR_NHWC, d->out_channels,
                                         d->in_channels, d->kernel, d->kernel));
  CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->conv, d->pad, d->pad, d->stride, d->stride, 1, 1,
                                              CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  int n = 0, c = 0, h = 0, w = 0;
  CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &n, &c, &h, &w));
  FP_CHECK(h == conv_out_size(d, x->h) && w == conv_out_size(d, x->w) && c == d->out_channels,
           "cuDNN's convolution output %dx%dx%d differs from ours", c, h, w);
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NHWC, type, n, c, h, w));
}

static conv_plan *plan_for(const conv_desc *d, const tensor *x) {
  conv_plan_cache *cache = cuda.conv_plans;
  if (!cache) cache = cuda.conv_plans = fp_calloc(1, sizeof *cache);
  conv_key key = {d->in_channels, d->out_channels, d->kernel, d->stride, d->pad, x->n, x->h,
                  x->w,           (int)x->dtype};
  for (int i = 0; i < cache->count; i++)
    if (!memcmp(&cache->plans[i].key, &key, sizeof key)) return &cache->plans[i];
  if (cache->count == cache->capacity) {
    cache->capacity = cache->capacity ? 2 * cache->capacity : 64;
    cache->plans = realloc(cache->plans, (size_t)cache->capacity * sizeof *cache->plans);
    FP_CHECK(cache->plans, "out of memory for %d convolution plans", cache->capacity);
  }
  conv_plan *p = &cache->plans[cache->count++];
  plan_init(p, d, x);
  return p;
}

void cuda_conv_plans_release(void) {
  conv_plan_cache *cache = cuda.conv_plans;
  if (!cache) return;
  for (int i = 0; i < cache->count; i++) {
    conv_plan *p = &cache->plans[i];
    CUDNN_CHECK(cudnnDestroyTensorDescriptor(p->x));
    CUDNN_CHECK(cudnnDestroyTensorDescriptor(p->y));
    CUDNN_CHECK(cudnnDestroyFilterDescriptor(p->w));
    CUDNN_CHECK(cudnnDestroyConvolutionDescriptor(p->conv));
  }
  free(cache->plans);
  free(cache);
  cuda.conv_plans = NULL;
}

/* The direction's algorithm with its library workspace, and the math type it runs with set. */
static const conv_algorithm *prepare(conv_plan *p, int direction, void **workspace) {
  const conv_algorithm *a = algorithm_for(p, direction);
  *workspace = cuda_workspace(CUDA_WS_LIBRARY, a->workspace_bytes);
  CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv, a->math));
  return a;
}

/* cuDNN's Tensor Core kernels want 16-byte aligned operands; the parameter buffer packs its
 * tensors without padding, so a 1x1 kernel's weights (or gradient) are used in place only where
 * they happen to be aligned. */
static int aligned16(const void *p) {
  return ((uintptr_t)p & 15) == 0;
}

/* OIHW weights in the activations' type as cuDNN wants them (OHWI); a 1x1 kernel is both. */
static const void *weights_ohwi(const conv_desc *d, const void *weights, fp_dtype type) {
  if (d->kernel == 1 && aligned16(weights)) return weights;
  size_t count = (size_t)d->out_channels * d->in_channels * d->kernel * d->kernel;
  void *ohwi = cuda_workspace(CUDA_WS_WEIGHTS, count * fp_dtype_size(type));
  cuk_oihw_to_ohwi(ohwi, (int)type, weights, (int)type, d->out_channels, d->in_channels, d->kernel,
                   cuda.stream);
  return ohwi;
}

static void check_shapes(const conv_desc *d, const tensor *x, const tensor *y) {
  FP_CHECK(x->c == d->in_channels && y->c == d->out_channels && x->n == y->n &&
               y->h == conv_out_size(d, x->h) && y->w == conv_out_size(d, x->w) &&
               x->dtype == y->dtype,
           "convolution %d->%d: tensors %dx%dx%dx%d %s -> %dx%dx%dx%d %s do not fit",
           d->in_channels, d->out_channels, x->n, x->c, x->h, x->w, fp_dtype_name(x->dtype), y->n,
           y->c, y->h, y->w, fp_dtype_name(y->dtype));
}

static const float one = 1.0f, zero = 0.0f;

static void convolve(const conv_desc *d, const tensor *x, const void *weights, tensor *y) {
  check_shapes(d, x, y);
  conv_plan *p = plan_for(d, x);
  void *workspace = NULL;
  const conv_algorithm *a = prepare(p, CONV_FORWARD, &workspace);
  const void *w = weights_ohwi(d, weights, x->dtype);
  CUDNN_CHECK(cudnnConvolutionForward(cuda.cudnn, &one, p->x, x->data, p->w, w, p->conv,
                                      (cudnnConvolutionFwdAlgo_t)a->algo, workspace,
                                      a->workspace_bytes, &zero, p->y, y->data));
}

void cuda_conv2d_forward(const conv_desc *d, const tensor *x, const void *weights,
                         const float *bias, tensor *y) {
  convolve(d, x, weights, y);
  if (bias)
    cuk_epilogue(y->data, (int)y->dtype, bias, NULL, 0, tensor_pixels(y), y->c, cuda.stream);
}

/* cuDNN's convolution, then bias, residual and ReLU in one pass over its output. */
void cuda_conv2d_forward_fused(const conv_desc *d, const tensor *x, const void *weights,
                               const float *bias, const conv_epilogue *epilogue, tensor *y) {
  const tensor *residual = epilogue->residual;
  if (residual)
    FP_CHECK(CUDA_SAME_SHAPE(residual, y) && residual->dtype == y->dtype &&
                 residual->data != y->data,
             "fused conv: the residual %dx%dx%dx%d %s is not a tensor of the output's shape",
             residual->n, residual->c, residual->h, residual->w, fp_dtype_name(residual->dtype));
  convolve(d, x, weights, y);
  if (bias || residual || epilogue->relu)
    cuk_epilogue(y->data, (int)y->dtype, bias, residual ? residual->data : NULL, epilogue->relu,
                 tensor_pixels(y), y->c, cuda.stream);
}

void cuda_conv2d_backward_data(const conv_desc *d, const tensor *dy, const void *weights,
                               tensor *dx) {
  check_shapes(d, dx, dy);
  conv_plan *p = plan_for(d, dx);
  void *workspace = NULL;
  const conv_algorithm *a = prepare(p, CONV_BACKWARD_DATA, &workspace);
  const void *w = weights_ohwi(d, weights, dx->dtype);
  CUDNN_CHECK(cudnnConvolutionBackwardData(cuda.cudnn, &one, p->w, w, p->y, dy->data, p->conv,
                                           (cudnnConvolutionBwdDataAlgo_t)a->algo, workspace,
                                           a->workspace_bytes, &zero, p->x, dx->data));
}

void cuda_conv2d_backward_weights(const conv_desc *d, const tensor *x, const tensor *dy,
                                  float *grad_weights, float *grad_bias) {
  check_shapes(d, x, dy);
  conv_plan *p = plan_for(d, x);
  void *workspace = NULL;
  const conv_algorithm *a = prepare(p, CONV_BACKWARD_FILTER, &workspace);
  size_t count = (size_t)d->out_channels * d->in_channels * d->kernel * d->kernel;
  /* f32 1x1: cuDNN writes the gradient buffer itself (OHWI == OIHW) */
  int in_place = x->dtype == FP_F32 && d->kernel == 1 && aligned16(grad_weights);
  void *dw = in_place ? (void *)grad_weights
                      : cuda_workspace(CUDA_WS_GRAD, count * fp_dtype_size(x->dtype));
  CUDNN_CHECK(cudnnConvolutionBackwardFilter(cuda.cudnn, &one, p->x, x->data, p->y, dy->data,
                                             p->conv, (cudnnConvolutionBwdFilterAlgo_t)a->algo,
                                             workspace, a->workspace_bytes, &zero, p->w, dw));
  if (!in_place)
    cuk_ohwi_to_oihw_f32(grad_weights, dw, (int)x->dtype, d->out_channels, d->in_channels,
                         d->kernel, cuda.stream);
  if (grad_bias)
    cuk_channel_sum(grad_bias, dy->data, (int)dy->dtype, tensor_pixels(dy), dy->c, cuda.stream);
}
