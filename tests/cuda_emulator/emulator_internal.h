/* Shared by the emulator's own files (never by the code under test). */
#ifndef FP_EMULATOR_INTERNAL_H
#define FP_EMULATOR_INTERNAL_H

#include <functional>

#include "cuda_runtime.h"

namespace emu {

[[noreturn]] void fatal(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* runs op now, or keeps it in the graph that `stream` records */
void queue(cudaStream_t stream, std::function<void()> op);

/* stops unless [p, p + bytes) lies inside one cudaMalloc allocation */
void check_device_range(const void *p, size_t bytes, const char *what);

/* every block of the grid, one after another (emulator_fibers.cpp) */
void run_grid(const config &c, const char *name, const std::function<void()> &body);

} // namespace emu

#endif
