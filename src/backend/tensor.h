/* Element types and activation tensors. A tensor is a 4-D shape, an element type and a pointer
 * to backend memory; its memory layout and size belong to the backend (backend.h): allocate
 * with backend.tensor_alloc, size shared buffers with backend.tensor_bytes. */
#ifndef FP_TENSOR_H
#define FP_TENSOR_H

#include <stddef.h>

/* FP_F16 is reserved for the CUDA backend. */
typedef enum fp_dtype { FP_U8, FP_F32, FP_F64, FP_BF16, FP_F16 } fp_dtype;

/* Bytes per element and the name ("f32", "bf16", ...): the one definition of each. */
size_t fp_dtype_size(fp_dtype type);
const char *fp_dtype_name(fp_dtype type);

typedef struct tensor {
  void *data;
  fp_dtype dtype;
  int n, c, h, w;
} tensor;

static inline size_t tensor_count(const tensor *t) {
  return (size_t)t->n * (size_t)t->c * (size_t)t->h * (size_t)t->w;
}

static inline tensor tensor_shape(fp_dtype dtype, int n, int c, int h, int w) {
  tensor t = {NULL, dtype, n, c, h, w};
  return t;
}

#endif
