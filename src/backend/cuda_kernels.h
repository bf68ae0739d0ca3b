/* The CUDA backend's own kernels (cuda_kernels.cu), callable from C. Every launcher queues its
 * work on `stream` and returns without waiting; launch errors are checked (file:line and CUDA's
 * message) inside the launcher.
 *
 * Layout: activations are NHWC ("channels last", what Tensor Cores want): element (n, c, h, w) of
 * a tensor with C channels and W columns is at ((n * H + h) * W + w) * C + c. `pixels` is
 * N * H * W. Element types are fp_dtype values (tensor.h): FP_F32, FP_BF16 or FP_F16 for
 * activations; statistics, parameters, gradients and optimiser state are always float32 and
 * scalars float64 (backend.h's precision contract). Arithmetic is float32 (double where the
 * comment says so) whatever the storage type. Outputs are overwritten, never accumulated. */
#ifndef FP_CUDA_KERNELS_H
#define FP_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* dst[i] = src[i] in dst_type (f32/bf16/f16; round to nearest even); same types: a copy. */
void cuk_convert(void *dst, int dst_type, const void *src, int src_type, size_t count,
                 cudaStream_t stream);

/* host-order float32 NCHW <-> NHWC in `type` */
void cuk_nchw_f32_to_nhwc(void *dst, int type, const float *src, int n, int c, int h, int w,
                          cudaStream_t stream);
void cuk_nhwc_to_nchw_f32(float *dst, const void *src, int type, int n, int c, int h, int w,
                          cudaStream_t stream);
/* conv weights: OIHW (PyTorch's layout) in src_type -> OHWI (cuDNN's NHWC filter) in dst_type,
 * and an OHWI gradient in src_type -> OIHW float32 */
void cuk_oihw_to_ohwi(void *dst, int dst_type, const void *src, int src_type, int out, int in,
                      int kernel, cudaStream_t stream);
void cuk_ohwi_to_oihw_f32(float *dst, const void *src, int src_type, int out, int in, int kernel,
                          cudaStream_t stream);

/* the same tensor between NHWC and NCHW in one type (an inner product's NCHW flattening) */
void cuk_nhwc_to_nchw(void *dst, const void *src, int type, int n, int c, int h, int w,
                      cudaStream_t stream);
void cuk_nchw_to_nhwc(void *dst, const void *src, int type, int n, int c, int h, int w,
                      cudaStream_t stream);
/* y[p, c] = relu?(y[p, c] + bias[c] + residual[p, c]) for rows p < pixels, in f32 with one
 * rounding; bias and residual (y's type) may be NULL (conv and inner-product bias, and the
 * fused convolution's epilogue) */
void cuk_epilogue(void *y, int type, const float *bias, const void *residual, int relu,
                  size_t pixels, int channels, cudaStream_t stream);
/* batch norm folded into the convolution before it (backend.h, batchnorm_fold): weights
 * [out_channels, per_output] f32 -> folded_weights in `type`, and folded_bias */
void cuk_bn_fold(void *folded_weights, int type, float *folded_bias, const float *weights,
                 const float *conv_bias, const float *gamma, const float *beta, const float *mean,
                 const float *var, float eps, int out_channels, size_t per_output,
                 cudaStream_t stream);

/* sums[c] = sum over pixels of x[p, c] (float32 result; conv and inner-product bias gradients) */
void cuk_channel_sum(float *sums, const void *x, int type, size_t pixels, int channels,
                     cudaStream_t stream);

/* Batch norm over the pixels of each channel. Training: batch_mean and the biased batch_var
 * (accumulated in double; scratch holds at least 2 * channels doubles), then y = gamma * (x -
 * mean) / sqrt(var + eps) + beta; y may alias x. */
void cuk_bn_forward_training(const void *x, int type, size_t pixels, int channels,
                             const float *gamma, const float *beta, float eps, void *y,
                             float *batch_mean, float *batch_var, double *scratch,
                             cudaStream_t stream);
void cuk_bn_forward_inference(const void *x, int type, size_t pixels, int channels,
                              const float *gamma, const float *beta, const float *running_mean,
                              const float *running_var, float eps, void *y, cudaStream_t stream);
/* grad_beta = sum dy, grad_gamma = sum dy * xhat, dx = gamma / sqrt(var + eps) * (dy -
 * grad_beta / pixels - xhat * grad_gamma / pixels) (PyTorch's training-mode backward); dx may
 * alias dy. scratch: at least 2 * channels doubles. */
void cuk_bn_backward(const void *x, const void *dy, int type, size_t pixels, int channels,
                     const float *gamma, const float *batch_mean, const float *batch_var, float eps,
                     void *dx, float *grad_gamma, float *grad_beta, double *scratch,
                     cudaStream_t stream);
/* running = (1 - momentum) * running + momentum * batch; the variance unbiased by
 * count / (count - 1) */
void cuk_bn_update_running(float *running_mean, float *running_var, const float *batch_mean,
                           const float *batch_var, int channels, float momentum,
                           size_t count_per_channel, cudaStream_t stream);
/* synchronized batch norm's per-channel steps: as the op table's batchnorm_sync_moments and
 * batchnorm_sync_backward_terms */
void cuk_bn_sync_moments(float *batch_mean, float *batch_var, const float *global_mean,
                         int channels, cudaStream_t stream);
void cuk_bn_sync_backward_terms(const float *grad_gamma, const float *grad_beta,
                                const float *mean_grads, const float *gamma, const float *batch_var,
                                float eps, size_t count_per_channel, int channels, float *scale,
                                float *shift, cudaStream_t stream);

/* y = max(x, 0) (y may alias x); dx = y > 0 ? dy : 0 (dx may alias dy) */
void cuk_relu_forward(const void *x, void *y, int type, size_t count, cudaStream_t stream);
void cuk_relu_backward(const void *y, const void *dy, void *dx, int type, size_t count,
                       cudaStream_t stream);

/* Max pooling (square window, padding counts as -inf) of x [n, h, w, c] -> y [n, oh, ow, c].
 * Backward gives each window's gradient to the first position holding its maximum (row-major
 * order within the window, as PyTorch does), gathered per input element (no atomics). */
void cuk_maxpool_forward(const void *x, void *y, int type, int n, int c, int h, int w, int oh,
                         int ow, int kernel, int stride, int pad, cudaStream_t stream);
void cuk_maxpool_backward(const void *x, const void *dy, void *dx, int type, int n, int c, int h,
                          int w, int oh, int ow, int kernel, int stride, int pad,
                          cudaStream_t stream);

/* nearest x2: y [n, 2h, 2w, c] from x [n, h, w, c]; backward sums each 2x2 block of dy */
void cuk_upsample2x_forward(const void *x, void *y, int type, int n, int c, int h, int w,
                            cudaStream_t stream);
void cuk_upsample2x_backward(const void *dy, void *dx, int type, int n, int c, int h, int w,
                             cudaStream_t stream);

/* y [pixels, ca + cb] = a [pixels, ca] then b [pixels, cb], and the split back */
void cuk_concat_channels(const void *a, int ca, const void *b, int cb, void *y, int type,
                         size_t pixels, cudaStream_t stream);
void cuk_split_channels(const void *dy, void *da, int ca, void *db, int cb, int type, size_t pixels,
                        cudaStream_t stream);

/* y = a + b (y may alias a or b) */
void cuk_add(const void *a, const void *b, void *y, int type, size_t count, cudaStream_t stream);

/* global average pool: y [n, c] = mean over h*w of x [n, h*w, c]; backward spreads dy / (h*w) */
void cuk_global_avgpool_forward(const void *x, void *y, int type, int n, int c, int plane,
                                cudaStream_t stream);
void cuk_global_avgpool_backward(const void *dy, void *dx, int type, int n, int c, int plane,
                                 cudaStream_t stream);

/* Weighted softmax cross-entropy over the channels of logits [pixels, classes] (any type,
 * computed in float32 per pixel with the max subtracted), labels u8 [pixels]. Accumulates in
 * double: scalars[SCALAR_LOSS] = sum(w[t] * nll) / sum(w[t]) (0 when the sum is 0),
 * scalars[SCALAR_LOSS_WEIGHT] = sum(w[t]) over pixels whose label t != ignore_label,
 * scalars[SCALAR_BAD_LABELS] = how many labels are >= classes and not ignore_label. If grad is
 * not NULL: grad = (float)(1 / sum w) * w[t] * (softmax - onehot(t)), then times grad_scale (x
 * *grad_factor when grad_factor, device memory, is not NULL) when that is not 1 (two float32
 * multiplies, as the CPU backend rounds), in grad's type (the logits' type); such bad labels get
 * weight 0. bad_labels: one int of device memory for their count; scratch: at least 2 doubles. */
void cuk_softmax_cross_entropy(const void *logits, int type, size_t pixels, int classes,
                               const uint8_t *labels, const float *class_weights, int ignore_label,
                               float grad_scale, const float *grad_factor, void *grad,
                               double *scalars, double *scratch, int *bad_labels,
                               cudaStream_t stream);
/* predictions[p] = index of the first largest logit of pixel p; confidence (may be NULL)[p] =
 * its softmax probability, 1 / sum_k exp(x_k - x_max) (a -inf logit adds 0) */
void cuk_argmax_channels(const void *logits, int type, size_t pixels, int classes,
                         uint8_t *predictions, float *confidence, cudaStream_t stream);
void cuk_class_statistics(uint8_t *predictions, const float *confidence, const uint8_t *photos,
                          const float *boxes, const float *linear, int batch, int height, int width,
                          int classes, uint8_t outside_label, double *sums, cudaStream_t stream);

/* The Extended U-Net branches' ops (backend.h has the semantics). x and y of the pooling,
 * broadcast and sum are [n, plane, c] and [n, c]; the losses' logits [n, k] (NHWC with one
 * pixel). scratch: at least 2 doubles. */
void cuk_global_maxpool_forward(const void *x, void *y, int type, int n, int c, int plane,
                                cudaStream_t stream);
void cuk_global_maxpool_backward(const void *x, const void *dy, void *dx, int type, int n, int c,
                                 int plane, cudaStream_t stream);
void cuk_broadcast_plane(const void *x, void *y, int type, int n, int c, int plane,
                         cudaStream_t stream);
void cuk_sum_plane(const void *dy, void *dx, int type, int n, int c, int plane,
                   cudaStream_t stream);
void cuk_mul(const void *a, const void *b, void *y, int type, size_t count, cudaStream_t stream);
void cuk_sigmoid_forward(const void *x, void *y, int type, size_t count, cudaStream_t stream);
void cuk_sigmoid_backward(const void *y, const void *dy, void *dx, int type, size_t count,
                          cudaStream_t stream);
void cuk_sigmoid_bce(const void *logits, int type, size_t count, const float *targets,
                     float grad_scale, void *grad, double *scalars, double *scratch,
                     cudaStream_t stream);
void cuk_sigmoid_smooth_l1(const void *x, int type, size_t count, const float *targets,
                           const float *mask, float grad_scale, const float *grad_factor,
                           void *grad, double *scalars, double *scratch, cudaStream_t stream);

/* scalars[SCALAR_GRAD_NORM] = sqrt(sum g^2) / loss_scale (double), scalars[SCALAR_NONFINITE] =
 * 1 when not finite else 0, scalars[SCALAR_CLIP_FACTOR] = (double)(float)(clip_norm / (norm +
 * 1e-6)) when 0 < clip_norm < norm, else 1, divided by loss_scale. scratch: at least 1 double. */
void cuk_gradient_norm(const float *grads, size_t count, double clip_norm, double loss_scale,
                       double *scalars, double *scratch, cudaStream_t stream);
/* Adam / AdamW with lr, step and clip factor read from scalars (device memory), the same
 * float32 arithmetic in the same order as the CPU backend's cpu_adam_update (torch.optim 1.13);
 * nothing changes when scalars[SCALAR_NONFINITE] is set. */
void cuk_adam_update(float *params, const float *grads, float *exp_avg, float *exp_avg_sq,
                     size_t count, float beta1, float beta2, float eps, float weight_decay,
                     int decoupled_weight_decay, const double *scalars, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
