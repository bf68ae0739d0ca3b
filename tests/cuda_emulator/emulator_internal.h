/* Shared by the emulator's own files (never by the code under test). */
#ifndef FP_EMULATOR_INTERNAL_H
#define FP_EMULATOR_INTERNAL_H

#include <functional>
#include <mutex>

#include "cuda_runtime.h"

namespace emu {

[[noreturn]] void fatal(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* held by every call that touches the device's state: one caller at a time */
std::recursive_mutex &device_lock();

/* sets the error cudaGetLastError returns next, and returns it */
cudaError_t fail(cudaError_t error, const char *what);

/* stops the program when a graph is being recorded: `call` is one CUDA refuses then */
void refused_while_capturing(const char *call);

/* emulator_streams.cpp: op joins the stream's queue (or the graph the stream records) */
void queue(cudaStream_t stream, std::function<void()> op);
bool recording(cudaStream_t stream);
bool capturing();
/* runs the stream's queued work (and what it waits for), or every stream's */
void synchronize(cudaStream_t stream);
void synchronize_device();

/* stops unless [p, p + bytes) lies inside one cudaMalloc allocation */
void check_device_range(const void *p, size_t bytes, const char *what);

/* every block of the grid, one after another (emulator_fibers.cpp) */
void run_grid(const config &c, const char *name, const std::function<void()> &body);

} // namespace emu

#endif
