/* The finite-difference harness the gradient-check programs share (test_gradcheck.c: the op
 * table's layer ops; test_gradcheck_heads.c: the Extended U-Net branches' ops). An op case maps
 * host NCHW inputs to a host output; the harness checks its backward against central
 * differences of sum(r * forward) for a fixed random r, then (where the backend runs bf16) the
 * op in bf16 against the same op in f32 on bf16-representable inputs. */
#ifndef FP_GRADCHECK_H
#define FP_GRADCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "rng.h"

enum { MAX_INPUTS = 3, SAMPLES_PER_INPUT = 12 };

typedef struct op_case op_case;
struct op_case {
  const char *name;
  int input_count;
  const char *input_names[MAX_INPUTS];
  size_t input_sizes[MAX_INPUTS];
  size_t output_size;
  /* host NCHW in, host NCHW out */
  void (*forward)(const op_case *c, float **inputs, float *output);
  void (*backward)(const op_case *c, float **inputs, const float *grad_output, float **grads);
  tensor x, y, b; /* shapes only */
  conv_desc conv;
  pool_desc pool;
  int has_bias;
  uint8_t *labels;
  float *class_weights;
  double step;         /* finite-difference step */
  float value_spacing; /* inputs kept at least this far from kinks (ReLU, max) */
};

/* the backend under test, and the dtype upload gives activations and weights */
extern const backend *be;
extern fp_dtype activation_dtype;

tensor upload(const tensor *shape, const float *host);
void download(tensor *t, float *host);
float *upload_flat(const float *host, size_t count);
void *upload_weights(const float *host, size_t count); /* in activation_dtype */
void download_flat(float *host, float *p, size_t count);

/* Checks every case (prepare, if not NULL, runs before each); prints a line per case and a
 * summary; returns the number of failures, bf16 comparisons and reference primitives included. */
int gradcheck_run(op_case *cases, int count, void (*prepare)(const op_case *c), rng *r);

#endif
