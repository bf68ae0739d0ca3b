/* The CUDA emulator's runtime: memory, streams, events, graphs and the kernel launcher. Device
 * memory is host memory, checked by range on every copy; queued work runs at once unless its
 * stream is recording a graph, when it is kept and run again at each graph launch. Kernels run
 * one block at a time; a block's threads are fibers (emulator_fibers.cpp) that take turns
 * between barriers, or plain calls once a kernel has shown it never waits at one. The rules of
 * the real runtime that this project relies on are enforced: calls that may not happen while a
 * graph records fail the capture as CUDA's do, launch geometry is checked, a capture copies
 * from page-locked memory only. */
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "cuda_runtime.h"
#include "emulator_internal.h"

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

struct emu_graph {
  std::vector<std::function<void()>> ops;
};

struct emu_stream {
  emu_graph *recording; /* the graph being captured on this stream, or NULL */
};

struct emu_event {}; /* queued work runs at once: every event has completed */

namespace {

std::recursive_mutex device_lock; /* one device: one caller at a time */
cudaError_t last_error = cudaSuccess;
emu_stream legacy_stream = {nullptr};
std::map<const char *, size_t> device_blocks, pinned_blocks;
int capturing_streams;

emu_stream *stream_of(cudaStream_t s) {
  return s ? s : &legacy_stream;
}

/* 1 when one allocation of `blocks` holds all of [p, p + bytes) */
int holds(const std::map<const char *, size_t> &blocks, const void *p, size_t bytes) {
  const char *c = (const char *)p;
  auto it = blocks.upper_bound(c);
  if (it == blocks.begin()) return 0;
  --it;
  return c >= it->first && c + bytes <= it->first + it->second;
}

cudaError_t fail(cudaError_t error, const char *what) {
  if (getenv("FP_CUDA_EMULATOR_VERBOSE")) fprintf(stderr, "cuda emulator: %s\n", what);
  last_error = error;
  return error;
}

/* a call that CUDA refuses while this thread captures (cudaStreamCaptureModeThreadLocal):
 * the backend promises never to make one (cuda_not_capturing), so it stops the program */
cudaError_t refused_while_capturing(const char *call) {
  if (capturing_streams)
    emu::fatal("%s while a graph is being recorded (CUDA refuses it and invalidates the capture)",
               call);
  return cudaSuccess;
}

void enqueue(cudaStream_t s, std::function<void()> op) {
  emu_stream *stream = stream_of(s);
  if (stream->recording)
    stream->recording->ops.push_back(std::move(op));
  else
    op();
}

} // namespace

namespace emu {

[[noreturn]] void fatal(const char *format, ...) {
  va_list args;
  va_start(args, format);
  fprintf(stderr, "cuda emulator: ");
  vfprintf(stderr, format, args);
  fprintf(stderr, "\n");
  va_end(args);
  abort();
}

void queue(cudaStream_t stream, std::function<void()> op) {
  std::lock_guard<std::recursive_mutex> guard(device_lock);
  enqueue(stream, std::move(op));
}

void check_device_range(const void *p, size_t bytes, const char *what) {
  std::lock_guard<std::recursive_mutex> guard(device_lock);
  if (bytes && !holds(device_blocks, p, bytes))
    fatal("%s: %zu bytes at %p are not inside one device allocation", what, bytes, p);
}

void launch_body(const config &c, const char *name, std::function<void()> body) {
  std::lock_guard<std::recursive_mutex> guard(device_lock);
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
  enqueue(c.stream, [geometry, name, body]() { run_grid(geometry, name, body); });
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
  case cudaErrorIllegalState:
    return "cudaErrorIllegalState";
  }
  return "cudaErrorUnknown";
}

cudaError_t cudaGetLastError(void) {
  std::lock_guard<std::recursive_mutex> guard(device_lock);
  cudaError_t error = last_error;
  last_error = cudaSuccess;
  return error;
}

cudaError_t cudaGetDeviceCount(int *count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : fail(cudaErrorInvalidValue, "cudaSetDevice: device 0 only");
}

/* an sm_90 device, so that every precision runs (bf16 from sm_80, f16 from sm_70) */
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device) {
  if (device != 0) return fail(cudaErrorInvalidValue, "cudaGetDeviceProperties: device 0 only");
  memset(prop, 0, sizeof *prop);
  snprintf(prop->name, sizeof prop->name, "CUDA emulator on the host");
  prop->major = 9;
  prop->minor = 0;
  prop->totalGlobalMem = (size_t)16 << 30;
  prop->multiProcessorCount = 1;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
  return refused_while_capturing("cudaDeviceSynchronize");
}

cudaError_t cudaMalloc(void **pointer, size_t bytes) {
  std::lock_guard<std::recursive_mutex> guard(device_lock);
  refused_while_capturing("cudaMalloc");
  size_t rounded = (bytes + 255) / 256 * 256;
  void *p = aligned_alloc(256, rounded ? rounded : 256);
  if (!p) return fail(cudaErrorMemoryAllocation, "cudaMalloc: out of host memory");
  memset(p, 0xa5, rounded ? rounded : 256); /* device memory starts as garbage */
  device_blocks[(const char *)p] = bytes;
  *pointer = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void *pointer) {
  std::lock_guard<std::recursive_mutex> guard(device_lock);
  refused_while_capturing("cudaFree");
  if (!pointer) return cudaSuccess;
  if (!device_blocks.erase((const char *)pointer))
    emu::fatal("cudaFree(%p): not a pointer cudaMalloc returned", pointer);
  free(pointer);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void **pointer, size_t bytes) {
  std::lock_guard<std::recursive_mutex> guard(device_lock);
  refused_while_capturing("cudaMallocHost");
  void *p = malloc(bytes ? bytes : 1);
  if (!p) return fail(cudaErrorMemoryAllocation, "cudaMallocHost: out of host memory");
  pinned_blocks[(const char *)p] = bytes;
  *pointer = p;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void *pointer) {
  std::lock_guard<std::recursive_mutex> guard(device_lock);
  refused_while_capturing("cudaFreeHost");
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
  std::lock_guard<std::recursive_mutex> guard(device_lock);
  const int src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  const int dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  if (kind == cudaMemcpyHostToHost || kind == cudaMemcpyDefault)
    emu::fatal("cudaMemcpyAsync: kind %d is not used by this project", (int)kind);
  if (src_device) emu::check_device_range(src, bytes, "cudaMemcpyAsync source");
  if (dst_device) emu::check_device_range(dst, bytes, "cudaMemcpyAsync destination");
  const void *host = !src_device ? src : !dst_device ? dst : nullptr;
  if (host && bytes && holds(device_blocks, host, 1))
    emu::fatal("cudaMemcpyAsync: the host side %p is device memory", host);
  if (host && bytes && stream_of(stream)->recording && !holds(pinned_blocks, host, bytes))
    emu::fatal("cudaMemcpyAsync: a graph records a copy from or to pageable host memory %p", host);
  enqueue(stream, [dst, src, bytes]() { memmove(dst, src, bytes); });
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags) {
  (void)flags;
  *stream = new emu_stream{nullptr};
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  (void)stream;
  return refused_while_capturing("cudaStreamSynchronize");
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags) {
  (void)event;
  (void)flags;
  if (stream_of(stream)->recording || capturing_streams)
    emu::fatal("cudaStreamWaitEvent while a graph records: cross-stream capture is not emulated");
  return cudaSuccess; /* the work it would wait for has run */
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned flags) {
  (void)flags;
  *event = new emu_event{};
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (stream_of(stream)->recording)
    emu::fatal("cudaEventRecord while a graph records: not emulated");
  (void)event;
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  (void)event;
  return refused_while_capturing("cudaEventSynchronize");
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  std::lock_guard<std::recursive_mutex> guard(device_lock);
  emu_stream *s = stream_of(stream);
  if (s == &legacy_stream || s->recording)
    return fail(cudaErrorIllegalState, "cudaStreamBeginCapture: legacy stream or recording");
  if (mode != cudaStreamCaptureModeThreadLocal)
    emu::fatal("cudaStreamBeginCapture: only the thread-local mode is emulated");
  s->recording = new emu_graph;
  capturing_streams++;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph) {
  std::lock_guard<std::recursive_mutex> guard(device_lock);
  emu_stream *s = stream_of(stream);
  if (!s->recording) return fail(cudaErrorIllegalState, "cudaStreamEndCapture: not recording");
  *graph = s->recording;
  s->recording = nullptr;
  capturing_streams--;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                 unsigned long long flags) {
  (void)flags;
  *exec = new emu_graph(*graph);
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(device_lock);
  if (stream_of(stream)->recording) emu::fatal("cudaGraphLaunch into a recording stream");
  for (auto &op : exec->ops) op();
  return cudaSuccess;
}

} /* extern "C" */
