/* The op table: everything the model, loss and optimiser do to numbers goes
 * through one of these. The CPU backend implements it with oneDNN (backend_cpu.c);
 * a CUDA backend implements the same table with cuDNN/cuBLAS/kernels, so model
 * code is written once.
 *
 * Memory: every float or byte pointer passed to an op is backend memory, made by
 * backend.alloc. Activation tensors are stored in a layout the backend chooses
 * (the CPU backend blocks channels by 8 where it can); convert with
 * tensor_from_nchw / tensor_to_nchw. Flat buffers (parameters, gradients, BN
 * statistics, optimiser state) are plain arrays; conv weights are OIHW, exactly
 * PyTorch's layout.
 *
 * Output semantics: every op overwrites its outputs (never accumulates). Where a
 * value feeds several consumers, the model adds the gradients with `add`. */
#ifndef FP_BACKEND_H
#define FP_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

typedef struct conv_desc {
  int in_channels, out_channels;
  int kernel, stride, pad; /* square kernel, symmetric padding */
} conv_desc;

static inline int conv_out_size(const conv_desc *d, int in) {
  return (in + 2 * d->pad - d->kernel) / d->stride + 1;
}

typedef struct pool_desc {
  int kernel, stride, pad;
} pool_desc;

typedef struct adam_config {
  float lr, beta1, beta2, eps, weight_decay;
  int decoupled_weight_decay; /* 1: AdamW, 0: Adam with L2 added to the gradient */
} adam_config;

typedef struct backend {
  const char *name;

  /* memory */
  void *(*alloc)(size_t bytes); /* zero-filled; aborts on failure */
  void (*release)(void *p);
  void (*fill_zero)(void *p, size_t bytes);
  void (*copy_from_host)(void *dst, const void *host_src, size_t bytes);
  void (*copy_to_host)(void *host_dst, const void *src, size_t bytes);
  void (*copy)(void *dst, const void *src, size_t bytes);
  void (*tensor_from_nchw)(tensor *t, const float *host_nchw);
  void (*tensor_to_nchw)(const tensor *t, float *host_nchw);

  /* convolution; bias may be NULL (grad_bias then ignored) */
  void (*conv2d_forward)(const conv_desc *d, const tensor *x, const float *weights,
                         const float *bias, tensor *y);
  void (*conv2d_backward_data)(const conv_desc *d, const tensor *dy, const float *weights,
                               tensor *dx);
  void (*conv2d_backward_weights)(const conv_desc *d, const tensor *x, const tensor *dy,
                                  float *grad_weights, float *grad_bias);

  /* batch norm over N,H,W per channel; batch_var is the biased variance */
  void (*batchnorm_forward_training)(const tensor *x, const float *gamma, const float *beta,
                                     float eps, tensor *y, float *batch_mean, float *batch_var);
  void (*batchnorm_forward_inference)(const tensor *x, const float *gamma, const float *beta,
                                      const float *running_mean, const float *running_var,
                                      float eps, tensor *y);
  void (*batchnorm_backward)(const tensor *x, const tensor *dy, const float *gamma,
                             const float *batch_mean, const float *batch_var, float eps,
                             tensor *dx, float *grad_gamma, float *grad_beta);
  /* running = (1-momentum)*running + momentum*batch, variance unbiased by
   * count/(count-1) as PyTorch does */
  void (*batchnorm_update_running)(float *running_mean, float *running_var,
                                   const float *batch_mean, const float *batch_var, int channels,
                                   float momentum, size_t count_per_channel);

  /* relu: y may alias x; backward reads the forward output y, dx may alias dy */
  void (*relu_forward)(const tensor *x, tensor *y);
  void (*relu_backward)(const tensor *y, const tensor *dy, tensor *dx);

  void (*maxpool_forward)(const pool_desc *d, const tensor *x, tensor *y);
  void (*maxpool_backward)(const pool_desc *d, const tensor *x, const tensor *dy, tensor *dx);

  /* nearest-neighbour x2 upsampling; backward sums each 2x2 block */
  void (*upsample2x_forward)(const tensor *x, tensor *y);
  void (*upsample2x_backward)(const tensor *dy, tensor *dx);

  /* channel concat of a then b, and its backward (split) */
  void (*concat_channels)(const tensor *a, const tensor *b, tensor *y);
  void (*split_channels)(const tensor *dy, tensor *da, tensor *db);

  /* y = a + b (y may alias a or b) */
  void (*add)(const tensor *a, const tensor *b, tensor *y);

  /* global average pool to [N,C,1,1] and its backward */
  void (*global_avgpool_forward)(const tensor *x, tensor *y);
  void (*global_avgpool_backward)(const tensor *dy, tensor *dx);

  /* fully connected: x [N,in] (any tensor, flattened per sample), weights
   * [out,in], bias [out] -> y [N,out,1,1] */
  void (*inner_product_forward)(const tensor *x, const float *weights, const float *bias,
                                tensor *y);
  void (*inner_product_backward)(const tensor *x, const tensor *dy, const float *weights,
                                 tensor *dx, float *grad_weights, float *grad_bias);

  /* Softmax cross-entropy over channels with per-class weights and an ignore
   * label, reduced like PyTorch's mean: sum(w[t]*nll)/sum(w[t]) over pixels
   * whose label t != ignore_label. Writes d loss / d logits to grad_logits
   * (may be NULL) and returns the loss. labels: uint8 [N,H,W]. */
  double (*softmax_cross_entropy)(const tensor *logits, const uint8_t *labels,
                                  const float *class_weights, int ignore_label,
                                  tensor *grad_logits);
  /* per-pixel argmax over channels -> uint8 [N,H,W] */
  void (*argmax_channels)(const tensor *logits, uint8_t *predictions);
  /* per-pixel softmax over channels (inference); probabilities has the logits' shape. A
   * channel at -inf gets probability 0; at least one channel per pixel must be finite. */
  void (*softmax_channels)(const tensor *logits, tensor *probabilities);

  /* optimiser helpers over flat buffers */
  double (*sum_of_squares)(const float *x, size_t count);
  void (*scale)(float *x, size_t count, float factor);
  /* one Adam/AdamW step; step is 1 on the first call */
  void (*adam_update)(float *params, const float *grads, float *exp_avg, float *exp_avg_sq,
                      size_t count, const adam_config *cfg, long step);
  /* count how many distinct primitives fell back to a reference implementation */
  int (*reference_primitive_count)(void);
} backend;

const backend *backend_cpu(void);

#endif
