/* What every backend shares: element types, and choosing a backend by name. */
#include "backend.h"

#include <stdio.h>
#include <string.h>

#include "check.h"

size_t fp_dtype_size(fp_dtype type) {
  switch (type) {
  case FP_U8:
    return 1;
  case FP_F32:
    return 4;
  case FP_F64:
    return 8;
  case FP_BF16:
  case FP_F16:
    return 2;
  }
  FP_FATAL("unknown element type %d", (int)type);
}

const char *fp_dtype_name(fp_dtype type) {
  switch (type) {
  case FP_U8:
    return "u8";
  case FP_F32:
    return "f32";
  case FP_F64:
    return "f64";
  case FP_BF16:
    return "bf16";
  case FP_F16:
    return "f16";
  }
  return "?";
}

const backend *backend_cpu(void);

const backend *backend_open(const char *name, char *why, size_t why_size) {
  if (!strcmp(name, "cpu") || !strcmp(name, "auto")) return backend_cpu();
  if (!strcmp(name, "cuda"))
    snprintf(why, why_size, "backend 'cuda' is not built into this program yet (CPU only)");
  else
    snprintf(why, why_size, "unknown backend '%s' (known: auto, cpu)", name);
  return NULL;
}
