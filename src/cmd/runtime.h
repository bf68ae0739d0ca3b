/* Choosing where a command computes: the backend and, with it, the collective its ranks use
 * (cpu -> MPI over host memory; cuda -> NCCL over device memory), and the compute precision.
 * Every command goes through runtime_open with the names from its job file or command line. */
#ifndef FP_RUNTIME_H
#define FP_RUNTIME_H

#include "backend.h"

typedef struct collective collective; /* collective.h; absent from the GPU check build */

/* The job-file / command-line words for model.backend and model.precision. */
#define RUNTIME_BACKEND_WORDS "auto|cpu|cuda"
#define RUNTIME_PRECISION_WORDS "auto|fp32|bf16|fp16"
/* Their help text, for every schema that has the keys. */
#define RUNTIME_BACKEND_HELP                                                                       \
  "where to compute: cpu (oneDNN) or cuda (cuDNN/cuBLAS, one GPU per rank); auto = cuda when "     \
  "it is built in and a GPU is visible, else cpu"
#define RUNTIME_PRECISION_AUTO_HELP                                                                \
  "auto = bf16 where the backend runs it faster than fp32 (CPU: AMX-BF16, or an AMD CPU with "     \
  "AVX512-BF16; GPU: sm_80 or later), else fp32"

typedef struct runtime {
  const backend *be;
  collective *comm; /* NULL unless runtime_open was asked for one */
  fp_dtype compute;
  char backend_reason[256];   /* "" or why auto did not take cuda */
  char precision_reason[256]; /* why `compute` was taken, for the command's first line */
} runtime;

/* backend_name: auto|cpu|cuda; precision_name: auto|fp32|bf16|fp16. auto takes bf16 where the
 * backend's bf16 is faster than its f32 (DTYPE_FASTER) and fp32 elsewhere (never fp16: it needs
 * loss scaling); an explicit bf16 or fp16 is run where the backend has native kernels for it
 * and refused where it has not. Errors name
 * `origin` (the job file or "command line") and exit 1. with_collective: also start the
 * collective that goes with the backend's memory (MPI for host memory, NCCL for device). */
runtime runtime_open(const char *backend_name, const char *precision_name, const char *origin,
                     int with_collective);
/* "backend=cpu-onednn (auto: cuda: ...) precision=bf16 (the CPU has AVX512-BF16 ...)" */
void runtime_describe(const runtime *rt, char *text, size_t size);
/* The word users write for a compute precision: fp32, bf16 or fp16. */
const char *runtime_precision_name(fp_dtype compute);

#endif
