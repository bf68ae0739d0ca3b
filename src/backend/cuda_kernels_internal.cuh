/* Private to the CUDA backend's kernel files (cuda_kernels.cu, cuda_kernels_reduce.cu): loads and
 * stores over the storage types (arithmetic is float32 whatever the storage), the dispatch on
 * an fp_dtype, launch geometry and the checks after launches and runtime calls. */
#ifndef FP_CUDA_KERNELS_INTERNAL_CUH
#define FP_CUDA_KERNELS_INTERNAL_CUH

#include <stddef.h>
#include <stdint.h>
#include <stdio.h> /* check.h's includes, here so that they are not seen inside extern "C" */
#include <stdlib.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda_kernels.h"

/* backend.h (scalar slots) and check.h (FP_FATAL) are C11; C++ spells _Noreturn [[noreturn]]. */
#define _Noreturn [[noreturn]]
extern "C" {
#include "backend.h"
#include "check.h"
}
#undef _Noreturn

/* After every kernel launch, in the launcher itself (__func__ names it). */
#define CUDA_LAUNCH_CHECK()                                                                        \
  do {                                                                                             \
    cudaError_t launch_err_ = cudaGetLastError();                                                  \
    if (launch_err_ != cudaSuccess)                                                                \
      FP_FATAL("%s: kernel launch failed: %s", __func__, cudaGetErrorString(launch_err_));         \
  } while (0)

/* Around runtime calls (memset, memcpy) queued by a launcher. */
#define CUDA_CALL(call)                                                                            \
  do {                                                                                             \
    cudaError_t call_err_ = (call);                                                                \
    if (call_err_ != cudaSuccess)                                                                  \
      FP_FATAL("%s: %s failed: %s", __func__, #call, cudaGetErrorString(call_err_));               \
  } while (0)

/* Runs the statements (__VA_ARGS__) with the type name TYPE bound to the storage type of the
 * fp_dtype `type`; any other type is fatal. */
#define CUK_DISPATCH(type, TYPE, ...)                                                              \
  switch (type) {                                                                                  \
  case FP_F32: {                                                                                   \
    typedef float TYPE;                                                                            \
    __VA_ARGS__;                                                                                   \
  } break;                                                                                         \
  case FP_BF16: {                                                                                  \
    typedef __nv_bfloat16 TYPE;                                                                    \
    __VA_ARGS__;                                                                                   \
  } break;                                                                                         \
  case FP_F16: {                                                                                   \
    typedef __half TYPE;                                                                           \
    __VA_ARGS__;                                                                                   \
  } break;                                                                                         \
  default:                                                                                         \
    FP_FATAL("%s: unsupported element type %d (f32, bf16 or f16 expected)", __func__,              \
             (int)(type));                                                                         \
  }

/* ------------------------------------------------------------- load / store */

__device__ __forceinline__ float load(const float *p, size_t i) {
  return p[i];
}
__device__ __forceinline__ float load(const __nv_bfloat16 *p, size_t i) {
  return __bfloat162float(p[i]);
}
__device__ __forceinline__ float load(const __half *p, size_t i) {
  return __half2float(p[i]);
}

/* round to nearest even */
__device__ __forceinline__ void store(float *p, size_t i, float v) {
  p[i] = v;
}
__device__ __forceinline__ void store(__nv_bfloat16 *p, size_t i, float v) {
  p[i] = __float2bfloat16_rn(v);
}
__device__ __forceinline__ void store(__half *p, size_t i, float v) {
  p[i] = __float2half_rn(v);
}

/* --------------------------------------------------------------- geometry */

enum { CUK_THREADS = 256, CUK_MAX_BLOCKS = 65536 };

/* Blocks of CUK_THREADS for `count` work items, capped (kernels loop with CUK_FOR), at least 1
 * so that an empty launch is still a valid one. */
inline unsigned cuk_blocks(size_t count) {
  size_t blocks = (count + CUK_THREADS - 1) / CUK_THREADS;
  if (blocks < 1) blocks = 1;
  if (blocks > CUK_MAX_BLOCKS) blocks = CUK_MAX_BLOCKS;
  return (unsigned)blocks;
}

/* grid-stride loop over [0, count) of a 1-D grid */
#define CUK_FOR(i, count) CUK_FOR_INDEX(size_t, i, count)
#define CUK_FOR_INDEX(INDEX, i, count)                                                             \
  for (INDEX i = (INDEX)blockIdx.x * blockDim.x + threadIdx.x; i < (count);                        \
       i += (INDEX)blockDim.x * gridDim.x)

/* Runs the statements with INDEX bound to uint32_t when every index the kernel forms is below
 * `largest` (the larger tensor's element count) and at most 2^31, so that i + grid stride
 * cannot wrap: 32-bit divisions and remainders cost a fraction of 64-bit ones. Else size_t. */
#define CUK_INDEX_DISPATCH(largest, INDEX, ...)                                                    \
  if ((size_t)(largest) <= (size_t)1 << 31) {                                                      \
    typedef uint32_t INDEX;                                                                        \
    __VA_ARGS__;                                                                                   \
  } else {                                                                                         \
    typedef size_t INDEX;                                                                          \
    __VA_ARGS__;                                                                                   \
  }

/* Per-channel work on NHWC, where a channel's values are strided by C: blocks of TILE_C x
 * TILE_ROWS threads, x over a tile of consecutive channels (coalesced), y and blockIdx.y over
 * pixels; a thread keeps one channel, so its per-channel constants load once. */
enum { TILE_C = 32, TILE_ROWS = 8, CHANNEL_BLOCKS = 2048 };

inline dim3 channel_grid(size_t pixels, int channels) {
  const unsigned tiles = channels > 0 ? (unsigned)((channels + TILE_C - 1) / TILE_C) : 1;
  size_t rows = (pixels + TILE_ROWS - 1) / TILE_ROWS, want = CHANNEL_BLOCKS / tiles;
  if (rows > want) rows = want;
  if (rows > 65535) rows = 65535;
  if (rows < 1) rows = 1;
  return dim3(tiles, (unsigned)rows);
}

/* the pixels of this thread in a channel_grid launch */
#define CHANNEL_TILE_FOR(p, pixels)                                                                \
  for (size_t p = (size_t)blockIdx.y * TILE_ROWS + threadIdx.y; p < (pixels);                      \
       p += (size_t)gridDim.y * TILE_ROWS)

/* --------------------------------------------------------- block reductions */

__device__ __forceinline__ double warp_sum(double v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

/* Sum of v over a 1-D block (a multiple of 32 threads); the result is in thread 0. Every thread
 * of the block must call it. */
__device__ __forceinline__ double block_sum(double v) {
  __shared__ double warp_sums[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  __syncthreads(); /* an earlier call's readers are done with warp_sums */
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  v = threadIdx.x < (blockDim.x >> 5) ? warp_sums[threadIdx.x] : 0.0;
  return warp == 0 ? warp_sum(v) : 0.0;
}

#endif
