/* What a .cu file sees of CUDA, for kernels run on the host by the emulator: the runtime API,
 * dim3 and the built-in indices, __syncthreads, the warp shuffle and atomics. Kernel files are
 * first rewritten by translate_launches.py: `kernel<<<grid, block, shared, stream>>>(args)`
 * becomes `emu::launch(emu::config(grid, block, shared, stream), &kernel, args)`, and `extern
 * __shared__` arrays point into emu::dynamic_shared(). */
#ifndef FP_EMULATED_CUDA_RUNTIME_H
#define FP_EMULATED_CUDA_RUNTIME_H

#include "cuda_runtime_api.h"

#ifdef __cplusplus
#include <cmath>
#include <cstdint>
#include <functional>
#include <tuple>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
/* a block's threads share one static variable: blocks run one after another */
#define __shared__ static

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef dim3 uint3;

/* the running thread's indices, set by the emulator before it runs (or resumes) a thread */
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

namespace emu {

struct config {
  dim3 grid, block;
  size_t shared_bytes;
  cudaStream_t stream;
  config(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = nullptr)
      : grid(g), block(b), shared_bytes(s), stream(st) {}
};

/* Runs (or records, on a capturing stream) body once per thread of the grid; `name` (the
 * kernel's, as written at the launch) is the emulator's key for the kernel and its messages. */
void launch_body(const config &c, const char *name, std::function<void()> body);

template <typename... Params, typename... Args>
void launch(const config &c, const char *name, void (*kernel)(Params...), Args &&...args) {
  std::tuple<std::decay_t<Params>...> values(std::forward<Args>(args)...);
  launch_body(c, name, [kernel, values]() { std::apply(kernel, values); });
}

void *dynamic_shared();
void block_barrier();
double shuffle_down(unsigned mask, double value, int delta);

} // namespace emu

inline void __syncthreads() {
  emu::block_barrier();
}

template <typename T> inline T __shfl_down_sync(unsigned mask, T value, int delta) {
  static_assert(std::is_arithmetic<T>::value, "the emulator shuffles numbers only");
  return (T)emu::shuffle_down(mask, (double)value, delta);
}

/* one block runs at a time, its threads one at a time between barriers: atomics are plain */
template <typename T> inline T atomicAdd(T *address, T value) {
  T old = *address;
  *address = old + value;
  return old;
}
template <typename T> inline T atomicMin(T *address, T value) {
  T old = *address;
  if (value < old) *address = value;
  return old;
}

template <typename A, typename B> inline std::common_type_t<A, B> min(A a, B b) {
  return b < a ? b : a;
}
template <typename A, typename B> inline std::common_type_t<A, B> max(A a, B b) {
  return a < b ? b : a;
}
using std::isfinite;
using std::isnan;

#endif /* __cplusplus */
#endif
