/* An activation tensor: a 4-D shape and a pointer to backend memory. Its
 * memory layout belongs to the backend (see backend.h); its element count is
 * always n*c*h*w. */
#ifndef FP_TENSOR_H
#define FP_TENSOR_H

#include <stddef.h>

typedef struct tensor {
  float *data;
  int n, c, h, w;
} tensor;

static inline size_t tensor_count(const tensor *t) {
  return (size_t)t->n * (size_t)t->c * (size_t)t->h * (size_t)t->w;
}

static inline tensor tensor_shape(int n, int c, int h, int w) {
  tensor t = {NULL, n, c, h, w};
  return t;
}

#endif
