/* CUDA_CHECK and NCCL_CHECK: stop with file:line, the call and the library's own message. */
#ifndef FP_CUDA_CHECK_H
#define FP_CUDA_CHECK_H

#include "check.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#define CUDA_CHECK(call)                                                                      \
  do {                                                                                        \
    cudaError_t cuda_status_ = (call);                                                        \
    if (cuda_status_ != cudaSuccess)                                                          \
      FP_FATAL("%s failed: %s (%s)", #call, cudaGetErrorString(cuda_status_),                 \
               cudaGetErrorName(cuda_status_));                                               \
  } while (0)

/* ncclGetLastError adds NCCL's detail (which peer, which transport) to the generic message. */
#define NCCL_CHECK(call)                                                                      \
  do {                                                                                        \
    ncclResult_t nccl_status_ = (call);                                                       \
    if (nccl_status_ != ncclSuccess)                                                          \
      FP_FATAL("%s failed: %s (%s)", #call, ncclGetErrorString(nccl_status_),                 \
               ncclGetLastError(NULL));                                                       \
  } while (0)

#endif
