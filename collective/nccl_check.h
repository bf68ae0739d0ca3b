/* NCCL_CHECK: stops with file:line, the call and NCCL's message (CUDA_CHECK comes along). */
#ifndef FP_NCCL_CHECK_H
#define FP_NCCL_CHECK_H

#include <nccl.h>

#include "cuda_check.h"

/* ncclGetLastError adds NCCL's detail (which peer, which transport) to the generic message. */
#define NCCL_CHECK(call)                                                                           \
  do {                                                                                             \
    ncclResult_t nccl_status_ = (call);                                                            \
    if (nccl_status_ != ncclSuccess)                                                               \
      FP_FATAL("%s failed: %s (%s)", #call, ncclGetErrorString(nccl_status_),                      \
               ncclGetLastError(NULL));                                                            \
  } while (0)

#endif
