/* CUDA backend: the inner product (fully connected layer) as cuBLAS GEMMs in the activations'
 * type with f32 accumulation; weight gradients are written in f32 directly. Row-major [rows,
 * cols] matrices are cuBLAS's column-major [cols, rows], so each product below is written for
 * the transposes. */
#include "cuda_internal.h"

static cudaDataType_t blas_type(fp_dtype type) {
  switch (type) {
  case FP_F32:
    return CUDA_R_32F;
  case FP_BF16:
    return CUDA_R_16BF;
  case FP_F16:
    return CUDA_R_16F;
  default:
    FP_FATAL("cuBLAS products have no %s variant here", fp_dtype_name(type));
  }
}

/* x flattened per sample in NCHW order (backend.h): NHWC with more than one pixel is reordered. */
static const void *rows_of(const tensor *x) {
  if (x->h * x->w == 1) return x->data;
  void *nchw = cuda_workspace(CUDA_WS_WEIGHTS, cuda_bytes_of(x));
  cuk_nhwc_to_nchw(nchw, x->data, (int)x->dtype, x->n, x->c, x->h, x->w, cuda.stream);
  return nchw;
}

static void gemm(cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                 const void *a, cudaDataType_t a_type, int lda, const void *b,
                 cudaDataType_t b_type, int ldb, void *c, cudaDataType_t c_type, int ldc) {
  const float one = 1.0f, zero = 0.0f;
  CUBLAS_CHECK(cublasGemmEx(cuda.cublas, transa, transb, m, n, k, &one, a, a_type, lda, b, b_type,
                            ldb, &zero, c, c_type, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void cuda_inner_product_forward(const tensor *x, const void *weights, const float *bias,
                                tensor *y) {
  const int inputs = x->c * x->h * x->w, outputs = y->c;
  FP_CHECK(y->n == x->n && y->h == 1 && y->w == 1 && y->dtype == x->dtype,
           "inner product: output %dx%dx%dx%d does not fit input batch %d", y->n, y->c, y->h, y->w,
           x->n);
  cudaDataType_t type = blas_type(x->dtype);
  /* y' [out, N] = W'^T [out, in] x' [in, N] */
  gemm(CUBLAS_OP_T, CUBLAS_OP_N, outputs, x->n, inputs, weights, type, inputs, rows_of(x), type,
       inputs, y->data, type, outputs);
  if (bias) cuk_epilogue(y->data, (int)y->dtype, bias, NULL, 0, (size_t)y->n, outputs, cuda.stream);
}

void cuda_inner_product_backward(const tensor *x, const tensor *dy, const void *weights, tensor *dx,
                                 float *grad_weights, float *grad_bias) {
  const int inputs = x->c * x->h * x->w, outputs = dy->c, batch = x->n;
  cudaDataType_t type = blas_type(x->dtype);
  /* dW' [in, out] = x' [in, N] dy'^T [N, out], in f32 */
  gemm(CUBLAS_OP_N, CUBLAS_OP_T, inputs, outputs, batch, rows_of(x), type, inputs, dy->data, type,
       outputs, grad_weights, CUDA_R_32F, inputs);
  if (grad_bias)
    cuk_channel_sum(grad_bias, dy->data, (int)dy->dtype, (size_t)batch, outputs, cuda.stream);
  if (!dx) return;
  FP_CHECK(CUDA_SAME_SHAPE(x, dx) && dx->dtype == x->dtype,
           "inner product: input gradient differs from the input in shape or type");
  /* dx' [in, N] = W' [in, out] dy' [out, N], NCHW rows; NHWC when there is more than a pixel */
  int reorder = dx->h * dx->w != 1;
  void *rows = reorder ? cuda_workspace(CUDA_WS_GRAD, cuda_bytes_of(dx)) : dx->data;
  gemm(CUBLAS_OP_N, CUBLAS_OP_N, inputs, batch, outputs, weights, type, inputs, dy->data, type,
       outputs, rows, type, inputs);
  if (reorder)
    cuk_nchw_to_nhwc(dx->data, rows, (int)dx->dtype, dx->n, dx->c, dx->h, dx->w, cuda.stream);
}
