/* CUDA backend: the device, stream and library handles, memory, tensor I/O and the op table. The
 * ops are in cuda_conv.c (cuDNN), cuda_dense.c (cuBLAS) and cuda_ops.c (our kernels). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "launcher.h"

cuda_state cuda;

/* ---------------------------------------------------------------- memory */

void *cuda_alloc_bytes(size_t bytes) {
  cuda_not_capturing("a device allocation");
  void *p = NULL;
  size_t rounded = (bytes + 255) / 256 * 256;
  cudaError_t status = cudaMalloc(&p, rounded ? rounded : 256);
  if (status != cudaSuccess)
    FP_FATAL("CUDA: out of device memory allocating %zu bytes on %s: %s", bytes, cuda.device_name,
             cudaGetErrorString(status));
  CUDA_CHECK(cudaMemsetAsync(p, 0, rounded ? rounded : 256, cuda.stream));
  return p;
}

void *cuda_workspace(int slot, size_t bytes) {
  if (cuda.workspace_bytes[slot] < bytes) {
    cuda_not_capturing("a workspace that grows");
    cuda.workspace_generation++;
    /* the old buffer may still be read by queued kernels: cudaFree waits for the device */
    CUDA_CHECK(cudaStreamSynchronize(cuda.stream));
    CUDA_CHECK(cudaFree(cuda.workspace[slot]));
    cuda.workspace[slot] = cuda_alloc_bytes(bytes);
    cuda.workspace_bytes[slot] = bytes;
  }
  return cuda.workspace[slot];
}

static void *cuda_alloc(fp_dtype type, size_t count) {
  return cuda_alloc_bytes(count * fp_dtype_size(type));
}

static void cuda_release(void *p) {
  if (!p) return;
  cuda_not_capturing("a device release");
  CUDA_CHECK(cudaStreamSynchronize(cuda.stream));
  CUDA_CHECK(cudaFree(p));
}

static void cuda_fill_zero(void *p, fp_dtype type, size_t count) {
  CUDA_CHECK(cudaMemsetAsync(p, 0, count * fp_dtype_size(type), cuda.stream));
}

static void cuda_upload(void *dst, const void *host_src, fp_dtype type, size_t count) {
  cuda_not_capturing("an upload");
  CUDA_CHECK(cudaMemcpyAsync(dst, host_src, count * fp_dtype_size(type), cudaMemcpyHostToDevice,
                             cuda.stream));
}

static void cuda_download(void *host_dst, const void *src, fp_dtype type, size_t count) {
  cuda_not_capturing("a download");
  CUDA_CHECK(cudaMemcpyAsync(host_dst, src, count * fp_dtype_size(type), cudaMemcpyDeviceToHost,
                             cuda.stream));
  CUDA_CHECK(cudaStreamSynchronize(cuda.stream));
}

static void *cuda_host_alloc(size_t bytes) {
  void *p = NULL;
  CUDA_CHECK(cudaMallocHost(&p, bytes));
  memset(p, 0, bytes);
  return p;
}

static void cuda_host_release(void *p) {
  if (!p) return;
  cuda_not_capturing("a host buffer release");
  CUDA_CHECK(cudaDeviceSynchronize()); /* no copy, on any stream, may still use it */
  CUDA_CHECK(cudaFreeHost(p));
}

static void cuda_download_async(void *host_dst, const void *src, fp_dtype type, size_t count,
                                int fence) {
  cuda_not_capturing("a download");
  FP_CHECK(fence >= 0 && fence < BACKEND_FENCES, "download_async: fence %d", fence);
  CUDA_CHECK(cudaMemcpyAsync(host_dst, src, count * fp_dtype_size(type), cudaMemcpyDeviceToHost,
                             cuda.stream));
  CUDA_CHECK(cudaEventRecord(cuda.fences[fence], cuda.stream));
}

static void cuda_download_wait(int fence) {
  FP_CHECK(fence >= 0 && fence < BACKEND_FENCES, "download_wait: fence %d", fence);
  cuda_not_capturing("a wait for a download");
  CUDA_CHECK(cudaEventSynchronize(cuda.fences[fence]));
}

static void cuda_copy(void *dst, const void *src, fp_dtype type, size_t count) {
  if (dst == src) return;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, count * fp_dtype_size(type), cudaMemcpyDeviceToDevice,
                             cuda.stream));
}

static void cuda_convert(void *dst, fp_dtype dst_type, const void *src, fp_dtype src_type,
                         size_t count) {
  cuk_convert(dst, (int)dst_type, src, (int)src_type, count, cuda.stream);
}

/* --------------------------------------------------------------- tensors */

static void check_activation_type(const tensor *t) {
  FP_CHECK(t->dtype == FP_F32 || t->dtype == FP_BF16 || t->dtype == FP_F16,
           "the CUDA backend has no %s activations", fp_dtype_name(t->dtype));
}

static size_t cuda_tensor_bytes(const tensor *t) {
  check_activation_type(t);
  return tensor_count(t) * fp_dtype_size(t->dtype);
}

static void cuda_tensor_alloc(tensor *t) {
  t->data = cuda_alloc_bytes(cuda_tensor_bytes(t));
}

static void cuda_tensor_release(tensor *t) {
  cuda_release(t->data);
  t->data = NULL;
}

static void cuda_tensor_from_nchw(tensor *t, const float *host_nchw) {
  cuda_not_capturing("an upload");
  check_activation_type(t);
  float *staging = cuda_workspace(CUDA_WS_STAGING, tensor_count(t) * sizeof(float));
  CUDA_CHECK(cudaMemcpyAsync(staging, host_nchw, tensor_count(t) * sizeof(float),
                             cudaMemcpyHostToDevice, cuda.stream));
  cuk_nchw_f32_to_nhwc(t->data, (int)t->dtype, staging, t->n, t->c, t->h, t->w, cuda.stream);
}

static void cuda_tensor_to_nchw(const tensor *t, float *host_nchw) {
  check_activation_type(t);
  float *staging = cuda_workspace(CUDA_WS_STAGING, tensor_count(t) * sizeof(float));
  cuk_nhwc_to_nchw_f32(staging, t->data, (int)t->dtype, t->n, t->c, t->h, t->w, cuda.stream);
  cuda_download(host_nchw, staging, FP_F32, tensor_count(t));
}

/* ------------------------------------------------------------ capability */

static dtype_support cuda_dtype_support(fp_dtype type, char *why, size_t why_size) {
  int cc = cuda.compute_capability;
  switch (type) {
  case FP_F32:
    snprintf(why, why_size, "%s (sm_%d)", cuda.device_name, cc);
    return DTYPE_NATIVE;
  case FP_BF16:
    if (cc >= 80) {
      snprintf(why, why_size, "%s (sm_%d) has bf16 Tensor Cores", cuda.device_name, cc);
      return DTYPE_FASTER;
    }
    snprintf(why, why_size, "%s (sm_%d) has no bf16 Tensor Cores (sm_80 or later)",
             cuda.device_name, cc);
    return DTYPE_NOT_NATIVE;
  case FP_F16:
    if (cc >= 70) {
      snprintf(why, why_size, "%s (sm_%d) has f16 Tensor Cores (train with loss scaling)",
               cuda.device_name, cc);
      return DTYPE_NATIVE;
    }
    snprintf(why, why_size, "%s (sm_%d) has no f16 Tensor Cores (sm_70 or later)", cuda.device_name,
             cc);
    return DTYPE_NOT_NATIVE;
  case FP_U8:
  case FP_F64:
    break;
  }
  snprintf(why, why_size, "%s is not a compute type", fp_dtype_name(type));
  return DTYPE_NOT_NATIVE;
}

static int cuda_reference_primitive_count(void) {
  return 0;
}

static void *cuda_device_stream(void) {
  return cuda.stream;
}

/* ------------------------------------------------------------------ init */

/* One rank per GPU: the launcher's local rank picks the device when several are visible (Slurm's
 * --gpus-per-task leaves each rank only its own, as device 0). */
static int local_device(int devices) {
  if (devices == 1) return 0;
  int rank = launcher_local_rank();
  if (rank < 0) return 0;
  FP_CHECK(rank < devices, "local rank %d has no GPU of its own: %d visible (one rank per GPU)",
           rank, devices);
  return rank;
}

static int cuda_init(char *why, size_t why_size) {
  int devices = 0;
  cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess || devices == 0) {
    snprintf(why, why_size, "no CUDA device visible (%s)",
             status != cudaSuccess ? cudaGetErrorString(status) : "0 devices");
    return 0;
  }
  cuda.device = local_device(devices);
  CUDA_CHECK(cudaSetDevice(cuda.device));
  struct cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, cuda.device));
  snprintf(cuda.device_name, sizeof cuda.device_name, "%s", prop.name);
  cuda.compute_capability = prop.major * 10 + prop.minor;
  CUDA_CHECK(cudaStreamCreateWithFlags(&cuda.stream, cudaStreamNonBlocking));
  for (int f = 0; f < BACKEND_FENCES; f++)
    CUDA_CHECK(cudaEventCreateWithFlags(&cuda.fences[f], cudaEventDisableTiming));
  CUDNN_CHECK(cudnnCreate(&cuda.cudnn));
  CUDNN_CHECK(cudnnSetStream(cuda.cudnn, cuda.stream));
  CUBLAS_CHECK(cublasCreate(&cuda.cublas));
  CUBLAS_CHECK(cublasSetStream(cuda.cublas, cuda.stream));
  /* f32 stays f32 (no TF32), so the f32 twin check holds to the CPU's tolerances */
  CUBLAS_CHECK(cublasSetMathMode(cuda.cublas, CUBLAS_PEDANTIC_MATH));
  cuda.reduce_scratch = cuda_alloc_bytes(CUDA_REDUCE_SCRATCH * sizeof(double));
  cuda.bad_labels = cuda_alloc_bytes(sizeof(int));
  return 1;
}

static backend table;

const backend *backend_cuda(char *why, size_t why_size) {
  static int state; /* 0: not tried, 1: ready, -1: no device */
  static char failure[256];
  if (state == 0) {
    state = cuda_init(failure, sizeof failure) ? 1 : -1;
    if (state == 1) {
      table = (backend){
          .name = "cuda",
          .device_memory = 1,
          .dtype_support = cuda_dtype_support,
          .alloc = cuda_alloc,
          .release = cuda_release,
          .fill_zero = cuda_fill_zero,
          .upload = cuda_upload,
          .download = cuda_download,
          .host_alloc = cuda_host_alloc,
          .host_release = cuda_host_release,
          .download_async = cuda_download_async,
          .download_wait = cuda_download_wait,
          .copy = cuda_copy,
          .convert = cuda_convert,
          .tensor_bytes = cuda_tensor_bytes,
          .tensor_alloc = cuda_tensor_alloc,
          .tensor_release = cuda_tensor_release,
          .tensor_from_nchw = cuda_tensor_from_nchw,
          .tensor_to_nchw = cuda_tensor_to_nchw,
          .conv2d_forward = cuda_conv2d_forward,
          .conv2d_forward_fused = cuda_conv2d_forward_fused,
          .conv2d_backward_data = cuda_conv2d_backward_data,
          .conv2d_backward_weights = cuda_conv2d_backward_weights,
          .inner_product_forward = cuda_inner_product_forward,
          .inner_product_backward = cuda_inner_product_backward,
          .reference_primitive_count = cuda_reference_primitive_count,
          .device_stream = cuda_device_stream,
      };
      cuda_fill_op_table(&table);
      cuda_fill_graph_ops(&table);
      cuda_fill_staging_ops(&table);
    }
  }
  if (state == 1) return &table;
  snprintf(why, why_size, "%s", failure);
  return NULL;
}
