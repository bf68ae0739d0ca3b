/* CUDA_CHECK: stops with file:line, the call and the CUDA runtime's own message. The one
 * definition for the CUDA backend and the NCCL collective (header only: fp_base does not link
 * CUDA; who includes this does). */
#ifndef FP_CUDA_CHECK_H
#define FP_CUDA_CHECK_H

#include <cuda_runtime_api.h>

#include "check.h"

#define CUDA_CHECK(call)                                                                           \
  do {                                                                                             \
    cudaError_t cuda_status_ = (call);                                                             \
    if (cuda_status_ != cudaSuccess)                                                               \
      FP_FATAL("CUDA: %s failed: %s (%s)", #call, cudaGetErrorString(cuda_status_),                \
               cudaGetErrorName(cuda_status_));                                                    \
  } while (0)

#endif
