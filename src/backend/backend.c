/* What every backend shares: element types, choosing a backend by name, and the contract of
 * staged uploads. */
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

#ifdef FP_HAVE_CPU_BACKEND
const backend *backend_cpu(void);
#endif
#ifdef FP_HAVE_CUDA_BACKEND
const backend *backend_cuda(char *why, size_t why_size);
#endif

static const backend *open_cpu(char *why, size_t why_size) {
#ifdef FP_HAVE_CPU_BACKEND
  (void)why, (void)why_size;
  return backend_cpu();
#else
  snprintf(why, why_size, "backend 'cpu' is not built into this program (built without oneDNN)");
  return NULL;
#endif
}

static const backend *open_cuda(char *why, size_t why_size) {
#ifdef FP_HAVE_CUDA_BACKEND
  return backend_cuda(why, why_size);
#else
  snprintf(why, why_size,
           "backend 'cuda' is not built into this program (no CUDA toolkit with cuDNN, cuBLAS "
           "and NCCL was found when it was configured)");
  return NULL;
#endif
}

const backend *backend_open(const char *name, char *why, size_t why_size) {
  if (why_size) why[0] = '\0';
  if (!strcmp(name, "cpu")) return open_cpu(why, why_size);
  if (!strcmp(name, "cuda")) return open_cuda(why, why_size);
  if (!strcmp(name, "auto")) {
    char cuda_why[256];
    const backend *be = open_cuda(cuda_why, sizeof cuda_why);
    if (be) return be;
    be = open_cpu(why, why_size);
    snprintf(why, why_size, be ? "auto: cuda: %s" : "no backend can run here: %s", cuda_why);
    return be;
  }
  snprintf(why, why_size, "unknown backend '%s' (known: auto, cpu, cuda)", name);
  return NULL;
}

void backend_check_vector(const char *op, const tensor *v, const tensor *planes) {
  FP_CHECK(v->n == planes->n && v->c == planes->c && v->h == 1 && v->w == 1 &&
               v->dtype == planes->dtype,
           "%s: %dx%dx%dx%d does not fit %dx%dx%dx%d", op, v->n, v->c, v->h, v->w, planes->n,
           planes->c, planes->h, planes->w);
}

void backend_stage_begin(stage_state states[BACKEND_STAGES], int slot, size_t count) {
  FP_CHECK(slot >= 0 && slot < BACKEND_STAGES, "stage_input: slot %d of %d", slot, BACKEND_STAGES);
  stage_state *s = &states[slot];
  FP_CHECK(!s->staged,
           "stage_input: slot %d is staged again before tensor_from_staged took it (its %zu "
           "floats would be lost)",
           slot, s->count);
  s->count = count;
  s->staged = 1;
}

void backend_stage_take(stage_state states[BACKEND_STAGES], int slot, const tensor *t) {
  FP_CHECK(slot >= 0 && slot < BACKEND_STAGES, "tensor_from_staged: slot %d of %d", slot,
           BACKEND_STAGES);
  stage_state *s = &states[slot];
  FP_CHECK(s->staged, "tensor_from_staged: slot %d holds nothing (stage_input it first)", slot);
  FP_CHECK(s->count == tensor_count(t),
           "tensor_from_staged: slot %d holds %zu floats, the %dx%dx%dx%d tensor %zu", slot,
           s->count, t->n, t->c, t->h, t->w, tensor_count(t));
  s->staged = 0;
}
