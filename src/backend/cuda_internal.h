/* Shared by the CUDA backend's files (never included above src/backend): the check macros, the
 * device, stream and library handles, grow-only workspaces, and the ops each file provides.
 *
 * Activations are NHWC in the tensor's dtype (cuda_kernels.h); flat buffers are plain arrays.
 * Every op is queued on one stream (cuda.stream) and returns without waiting; only download and
 * the few ops that must report an error (a label outside the classes) wait for it. */
#ifndef FP_CUDA_INTERNAL_H
#define FP_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "backend.h"
#include "check.h"
#include "cuda_check.h"
#include "cuda_kernels.h"

#define CUDNN_CHECK(call)                                                                          \
  do {                                                                                             \
    cudnnStatus_t cudnn_status_ = (call);                                                          \
    if (cudnn_status_ != CUDNN_STATUS_SUCCESS) {                                                   \
      char cudnn_detail_[512];                                                                     \
      cudnnGetLastErrorString(cudnn_detail_, sizeof cudnn_detail_);                                \
      FP_FATAL("cuDNN: %s failed: %s (%s)", #call, cudnnGetErrorString(cudnn_status_),             \
               cudnn_detail_);                                                                     \
    }                                                                                              \
  } while (0)

#define CUBLAS_CHECK(call)                                                                         \
  do {                                                                                             \
    cublasStatus_t cublas_status_ = (call);                                                        \
    if (cublas_status_ != CUBLAS_STATUS_SUCCESS)                                                   \
      FP_FATAL("cuBLAS: %s failed: %s (%s)", #call, cublasGetStatusString(cublas_status_),         \
               cublasGetStatusName(cublas_status_));                                               \
  } while (0)

/* Grow-only device workspaces; each op uses its slots only while its own kernels run (one
 * stream, so the next op's kernels start after them). */
enum cuda_workspace_slot {
  CUDA_WS_LIBRARY, /* cuDNN's algorithm workspace */
  CUDA_WS_WEIGHTS, /* conv weights in OHWI / a layout copy of an operand */
  CUDA_WS_GRAD,    /* conv weight gradients in OHWI, in the activations' type */
  CUDA_WS_STAGING, /* host NCHW floats on their way in or out */
  CUDA_WS_COUNT
};

typedef struct cuda_state {
  int device;
  int compute_capability; /* major * 10 + minor */
  char device_name[256];
  cudaStream_t stream;
  cudnnHandle_t cudnn;
  cublasHandle_t cublas;
  void *workspace[CUDA_WS_COUNT];
  size_t workspace_bytes[CUDA_WS_COUNT];
  double *reduce_scratch; /* device, CUDA_REDUCE_SCRATCH doubles, for the reduction kernels */
  int *bad_labels;        /* device, one int */
  void *conv_plans;       /* cuda_conv.c's cache of algorithms per shape */
  cudaEvent_t fences[BACKEND_FENCES]; /* download_async's */
  int capturing;                      /* between capture_begin and capture_end (cuda_graph.c) */
  unsigned workspace_generation;      /* counts workspace moves: a graph recorded before is stale */
} cuda_state;

enum { CUDA_REDUCE_SCRATCH = 2 * 4096 }; /* two doubles per channel, up to 4096 channels */

extern cuda_state cuda;

void *cuda_workspace(int slot, size_t bytes);
void *cuda_alloc_bytes(size_t bytes);

#define CUDA_SAME_SHAPE(a, b)                                                                      \
  ((a)->n == (b)->n && (a)->c == (b)->c && (a)->h == (b)->h && (a)->w == (b)->w)

static inline size_t cuda_bytes_of(const tensor *t) {
  return tensor_count(t) * fp_dtype_size(t->dtype);
}

static inline size_t tensor_pixels(const tensor *t) {
  return (size_t)t->n * (size_t)t->h * (size_t)t->w;
}

/* cuda_conv.c: cuDNN convolutions (the only file that uses cuDNN's legacy convolution API) */
void cuda_conv2d_forward(const conv_desc *d, const tensor *x, const void *weights,
                         const float *bias, tensor *y);
void cuda_conv2d_forward_fused(const conv_desc *d, const tensor *x, const void *weights,
                               const float *bias, const conv_epilogue *epilogue, tensor *y);
void cuda_conv2d_backward_data(const conv_desc *d, const tensor *dy, const void *weights,
                               tensor *dx);
void cuda_conv2d_backward_weights(const conv_desc *d, const tensor *x, const tensor *dy,
                                  float *grad_weights, float *grad_bias);
void cuda_conv_plans_release(void);

/* cuda_dense.c: inner product on cuBLAS */
void cuda_inner_product_forward(const tensor *x, const void *weights, const float *bias, tensor *y);
void cuda_inner_product_backward(const tensor *x, const tensor *dy, const void *weights, tensor *dx,
                                 float *grad_weights, float *grad_bias);

/* cuda_graph.c: capture and replay; cuda_not_capturing stops, naming what, when something that
 * cannot be recorded (an allocation, a wait for the device) is asked for while recording */
void cuda_fill_graph_ops(backend *table);
void cuda_not_capturing(const char *what);

/* cuda_staging.c: staged uploads on a copy stream of their own */
void cuda_fill_staging_ops(backend *table);

/* cuda_ops.c: the remaining ops, each a call of the kernels in cuda_kernels.cu */
void cuda_fill_op_table(backend *table);

#endif
