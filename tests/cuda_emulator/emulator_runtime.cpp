/* The CUDA emulator's runtime: errors, the device, memory and copies, and the kernel launcher.
 * Device memory is host memory, checked by range on every copy; work goes to the stream queues
 * of emulator_streams.cpp. Kernels run one block at a time; a block's threads are fibers
 * (emulator_fibers.cpp) that take turns between barriers, or plain calls once a kernel has
 * shown it never waits at one. The rules of the real runtime that this project relies on are
 * enforced: calls that may not happen while a graph records stop the program, launch geometry
 * is checked, a recorded copy uses page-locked memory. */
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "cuda_runtime.h"
#include "emulator_internal.h"

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace {

cudaError_t last_error = cudaSuccess;
std::map<const char *, size_t> device_blocks, pinned_blocks;

/* 1 when one allocation of `blocks` holds all of [p, p + bytes) */
int holds(const std::map<const char *, size_t> &blocks, const void *p, size_t bytes) {
  const char *c = (const char *)p;
  auto it = blocks.upper_bound(c);
  if (it == blocks.begin()) return 0;
  --it;
  return c >= it->first && c + bytes <= it->first + it->second;
}

} // namespace

namespace emu {

std::recursive_mutex &device_lock() {
  static std::recursive_mutex lock; /* one device: one caller at a time */
  return lock;
}

cudaError_t fail(cudaError_t error, const char *what) {
  if (getenv("FP_CUDA_EMULATOR_VERBOSE")) fprintf(stderr, "cuda emulator: %s\n", what);
  last_error = error;
  return error;
}

void refused_while_capturing(const char *call) {
  if (capturing())
    fatal("%s while a graph is being recorded (CUDA refuses it and invalidates the capture)", call);
}

[[noreturn]] void fatal(const char *format, ...) {
  va_list args;
  va_start(args, format);
  fprintf(stderr, "cuda emulator: ");
  vfprintf(stderr, format, args);
  fprintf(stderr, "\n");
  va_end(args);
  abort();
}

void check_device_range(const void *p, size_t bytes, const char *what) {
  std::lock_guard<std::recursive_mutex> guard(device_lock());
  if (bytes && !holds(device_blocks, p, bytes))
    fatal("%s: %zu bytes at %p are not inside one device allocation", what, bytes, p);
}

void launch_body(const config &c, const char *name, std::function<void()> body) {
  std::lock_guard<std::recursive_mutex> guard(device_lock());
  const unsigned long long threads = (unsigned long long)c.block.x * c.block.y * c.block.z;
  if (!threads || threads > 1024 || c.block.z > 64 || !c.grid.x || !c.grid.y || !c.grid.z ||
      c.grid.y > 65535 || c.grid.z > 65535 || c.shared_bytes > 48 * 1024) {
    fprintf(stderr,
            "cuda emulator: %s: invalid launch: grid %ux%ux%u, block %ux%ux%u, %zu bytes "
            "shared\n",
            name, c.grid.x, c.grid.y, c.grid.z, c.block.x, c.block.y, c.block.z, c.shared_bytes);
    last_error = cudaErrorInvalidConfiguration;
    return;
  }
  const config geometry = c;
  queue(c.stream, [geometry, name, body]() { run_grid(geometry, name, body); });
}

} // namespace emu

extern "C" {

const char *cudaGetErrorString(cudaError_t error) {
  switch (error) {
  case cudaSuccess:
    return "no error";
  case cudaErrorInvalidValue:
    return "invalid argument";
  case cudaErrorMemoryAllocation:
    return "out of memory";
  case cudaErrorInvalidConfiguration:
    return "invalid configuration argument";
  case cudaErrorNoDevice:
    return "no CUDA-capable device is detected";
  case cudaErrorStreamCaptureUnsupported:
    return "operation not permitted when stream is capturing";
  case cudaErrorStreamCaptureInvalidated:
    return "operation failed due to a previous error during capture";
  case cudaErrorStreamCaptureUnjoined:
    return "capture was not joined";
  case cudaErrorIllegalState:
    return "the operation cannot be performed in the present state";
  }
  return "unknown error";
}

const char *cudaGetErrorName(cudaError_t error) {
  switch (error) {
  case cudaSuccess:
    return "cudaSuccess";
  case cudaErrorInvalidValue:
    return "cudaErrorInvalidValue";
  case cudaErrorMemoryAllocation:
    return "cudaErrorMemoryAllocation";
  case cudaErrorInvalidConfiguration:
    return "cudaErrorInvalidConfiguration";
  case cudaErrorNoDevice:
    return "cudaErrorNoDevice";
  case cudaErrorStreamCaptureUnsupported:
    return "cudaErrorStreamCaptureUnsupported";
  case cudaErrorStreamCaptureInvalidated:
    return "cudaErrorStreamCaptureInvalidated";
  case cudaErrorStreamCaptureUnjoined:
    return "cudaErrorStreamCaptureUnjoined";
  case cudaErrorIllegalState:
    return "cudaErrorIllegalState";
  }
  return "cudaErrorUnknown";
}

cudaError_t cudaGetLastError(void) {
  std::lock_guard<std::recursive_mutex> guard(emu::device_lock());
  cudaError_t error = last_error;
  last_error = cudaSuccess;
  return error;
}

/* FP_CUDA_EMULATOR_DEVICES (1 to 8, default 1) devices: one per rank for the multi-rank tests;
 * each process emulates its own */
static int device_count() {
  const char *text = getenv("FP_CUDA_EMULATOR_DEVICES");
  const int count = text ? atoi(text) : 1;
  if (count < 1 || count > 8) emu::fatal("FP_CUDA_EMULATOR_DEVICES=%s: 1 to 8 expected", text);
  return count;
}

cudaError_t cudaGetDeviceCount(int *count) {
  *count = device_count();
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  return device >= 0 && device < device_count()
             ? cudaSuccess
             : emu::fail(cudaErrorInvalidValue, "cudaSetDevice: no such device");
}

/* an sm_90 device, so that every precision runs (bf16 from sm_80, f16 from sm_70) */
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device) {
  if (device < 0 || device >= device_count())
    return emu::fail(cudaErrorInvalidValue, "cudaGetDeviceProperties: no such device");
  memset(prop, 0, sizeof *prop);
  snprintf(prop->name, sizeof prop->name, "CUDA emulator on the host");
  prop->uuid.bytes[0] = (char)(device + 1); /* device i is the same one in every process */
  prop->major = 9;
  prop->minor = 0;
  prop->totalGlobalMem = (size_t)16 << 30;
  prop->multiProcessorCount = 1;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void **pointer, size_t bytes) {
  std::lock_guard<std::recursive_mutex> guard(emu::device_lock());
  emu::refused_while_capturing("cudaMalloc");
  size_t rounded = (bytes + 255) / 256 * 256;
  void *p = aligned_alloc(256, rounded ? rounded : 256);
  if (!p) return emu::fail(cudaErrorMemoryAllocation, "cudaMalloc: out of host memory");
  memset(p, 0xa5, rounded ? rounded : 256); /* device memory starts as garbage */
  device_blocks[(const char *)p] = bytes;
  *pointer = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void *pointer) {
  std::lock_guard<std::recursive_mutex> guard(emu::device_lock());
  emu::refused_while_capturing("cudaFree");
  emu::synchronize_device(); /* CUDA's cudaFree waits for the device */
  if (!pointer) return cudaSuccess;
  if (!device_blocks.erase((const char *)pointer))
    emu::fatal("cudaFree(%p): not a pointer cudaMalloc returned", pointer);
  free(pointer);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void **pointer, size_t bytes) {
  std::lock_guard<std::recursive_mutex> guard(emu::device_lock());
  emu::refused_while_capturing("cudaMallocHost");
  void *p = malloc(bytes ? bytes : 1);
  if (!p) return emu::fail(cudaErrorMemoryAllocation, "cudaMallocHost: out of host memory");
  pinned_blocks[(const char *)p] = bytes;
  *pointer = p;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void *pointer) {
  std::lock_guard<std::recursive_mutex> guard(emu::device_lock());
  emu::refused_while_capturing("cudaFreeHost");
  emu::synchronize_device(); /* as cudaFree */
  if (!pointer) return cudaSuccess;
  if (!pinned_blocks.erase((const char *)pointer))
    emu::fatal("cudaFreeHost(%p): not a pointer cudaMallocHost returned", pointer);
  free(pointer);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *pointer, int value, size_t bytes, cudaStream_t stream) {
  emu::check_device_range(pointer, bytes, "cudaMemsetAsync");
  emu::queue(stream, [pointer, value, bytes]() { memset(pointer, value, bytes); });
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(emu::device_lock());
  const int src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  const int dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  if (kind == cudaMemcpyHostToHost || kind == cudaMemcpyDefault)
    emu::fatal("cudaMemcpyAsync: kind %d is not used by this project", (int)kind);
  if (src_device) emu::check_device_range(src, bytes, "cudaMemcpyAsync source");
  if (dst_device) emu::check_device_range(dst, bytes, "cudaMemcpyAsync destination");
  const void *host = !src_device ? src : !dst_device ? dst : nullptr;
  if (host && bytes && holds(device_blocks, host, 1))
    emu::fatal("cudaMemcpyAsync: the host side %p is device memory", host);
  const bool pinned = host && holds(pinned_blocks, host, bytes);
  if (host && bytes && emu::recording(stream) && !pinned)
    emu::fatal("cudaMemcpyAsync: a graph records a copy from or to pageable host memory %p", host);
  if (host == src && !pinned) {
    /* CUDA stages pageable memory at once: later changes to it do not reach the device */
    auto staged = std::make_shared<std::vector<char>>((const char *)src, (const char *)src + bytes);
    emu::queue(stream, [dst, staged, bytes]() { memmove(dst, staged->data(), bytes); });
    return cudaSuccess;
  }
  /* everything else reads and writes when the stream gets to it: a device-to-host copy's
   * result is there only once the stream or an event after it has been waited for */
  emu::queue(stream, [dst, src, bytes]() { memmove(dst, src, bytes); });
  return cudaSuccess;
}

/* synchronous: after the legacy stream's earlier work, like CUDA's (the only blocking stream) */
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
  emu::refused_while_capturing("cudaMemcpy");
  emu::synchronize_device();
  cudaError_t status = cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
  emu::synchronize(nullptr);
  return status;
}

} /* extern "C" */
