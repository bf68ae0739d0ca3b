/* The op table (version 2): everything the model, loss and optimiser do to numbers goes through
 * one of these, so model code is written once for every backend (cpu = oneDNN; cuda = cuDNN,
 * cuBLAS and kernels).
 *
 * Memory contract:
 *  - Every pointer given to an op is backend memory from alloc or tensor_alloc, in tests too
 *    (labels, class weights, scalars). Host data crosses only through upload/download and
 *    tensor_from_nchw/tensor_to_nchw.
 *  - The backend decides a tensor's layout and size: tensor_alloc, or tensor_bytes to size a
 *    buffer that several shapes share. Flat buffers (parameters, gradients, statistics,
 *    optimiser state) are plain arrays of `count` elements; conv weights are OIHW, PyTorch's
 *    layout.
 *  - The backend owns its scratch and workspaces: no op allocates per call.
 *
 * Precision contract (mixed precision): activations (x, y, dx, dy) have the tensor's dtype (f32
 * or bf16). Weights passed to conv2d and inner_product have the dtype of the activations they
 * multiply (the model keeps a bf16 copy of its f32 master weights). Biases, batch-norm
 * parameters and statistics, every parameter gradient, optimiser state and scalars are f32 (or
 * f64 for scalars) whatever the activations are.
 *
 * Scalars that steer a training step (loss, gradient norm, clip factor, non-finite flag,
 * learning rate, step) live in backend memory, `double scalars[SCALAR_COUNT]`, written by the
 * ops below and read back explicitly once per step, so a whole step can later be captured as a
 * device graph.
 *
 * Output semantics: every op overwrites its outputs (never accumulates). Where a value feeds
 * several consumers, the model adds the gradients with `add`. */
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

/* What conv2d_forward_fused does after the convolution and bias: adds `residual` (NULL: none;
 * y's shape and dtype, never y itself), then ReLU when `relu` is set, in f32, rounding to y's
 * dtype at the end (the CPU backend's oneDNN post-ops round once; the CUDA backend's cuDNN
 * rounds the convolution's result first, then its epilogue kernel rounds again). */
typedef struct conv_epilogue {
  const tensor *residual;
  int relu;
} conv_epilogue;

typedef struct pool_desc {
  int kernel, stride, pad;
} pool_desc;

typedef struct adam_config {
  float beta1, beta2, eps, weight_decay;
  int decoupled_weight_decay; /* 1: AdamW, 0: Adam with L2 added to the gradient */
} adam_config;

/* Slots of the per-step scalar array (f64, backend memory). */
enum step_scalar {
  SCALAR_LOSS,        /* weighted mean cross-entropy of this rank's batch */
  SCALAR_LOSS_WEIGHT, /* sum of the class weights of the labelled pixels (the mean's divisor) */
  SCALAR_GRAD_NORM,   /* L2 norm of the gradient buffer, before clipping */
  SCALAR_CLIP_FACTOR, /* what adam_update multiplies the gradients by (1: no clipping) */
  SCALAR_NONFINITE,   /* 1 when the gradient norm is NaN or infinite */
  SCALAR_LR,          /* learning rate of the next adam_update */
  SCALAR_STEP,        /* Adam's step count for the next update, 1 on the first */
  SCALAR_BAD_LABELS,  /* labels outside the classes (not the ignore label) in the last loss */
  SCALAR_CLASS_LOSS,  /* sigmoid_bce: mean binary cross-entropy of the class-presence logits */
  SCALAR_BOX_LOSS,    /* sigmoid_smooth_l1: mean smooth-L1 over the present classes' boxes */
  SCALAR_BOX_COUNT,   /* sigmoid_smooth_l1: box coordinates it averaged over (4 per present) */
  SCALAR_COUNT
};

enum { BACKEND_FENCES = 2 }; /* download_async's fences: enough for double buffering */
enum { BACKEND_STAGES = 2 }; /* stage_input's slots: the batch being computed and the next */

/* How well a backend computes in an element type on this machine. */
typedef enum dtype_support {
  DTYPE_NOT_NATIVE, /* only as emulated or reference code: refused */
  DTYPE_NATIVE,     /* native kernels, but no faster than f32 here: on request only */
  DTYPE_FASTER      /* native kernels faster than f32: what `auto` precision takes */
} dtype_support;

typedef struct backend {
  const char *name;
  int device_memory; /* 1: backend memory is a device's (collectives over it need NCCL) */

  /* `why` receives a one-line reason (e.g. the CPU's ISA and what was measured on it). */
  dtype_support (*dtype_support)(fp_dtype type, char *why, size_t why_size);

  /* flat memory: `count` elements of `type`, zero-filled; aborts on failure */
  void *(*alloc)(fp_dtype type, size_t count);
  void (*release)(void *p);
  void (*fill_zero)(void *p, fp_dtype type, size_t count);
  /* upload and tensor_from_nchw queue the copy: host_src may be reused once they return,
   * except memory from host_alloc, which a device backend reads later: it must stay
   * unchanged until a later download, or download_wait on a fence given after the upload. */
  void (*upload)(void *dst, const void *host_src, fp_dtype type, size_t count);
  void (*download)(void *host_dst, const void *src, fp_dtype type, size_t count);
  /* Host memory that copies to and from the device can use without waiting (page-locked on a
   * device backend, plain memory on the CPU); zero-filled. */
  void *(*host_alloc)(size_t bytes);
  void (*host_release)(void *p);
  /* A download that returns at once: host_dst (from host_alloc) holds the data when
   * download_wait(fence) returns, fence in [0, BACKEND_FENCES) and waiting for the last
   * download_async given that fence (and every one queued before it). Ops queued after it may
   * overwrite src: the copy is ordered before them. The CPU backend copies at once. */
  void (*download_async)(void *host_dst, const void *src, fp_dtype type, size_t count, int fence);
  void (*download_wait)(int fence);
  /* Uploads overlapped with compute. stage_input queues the copy of `count` host float32 (NCHW,
   * from host_alloc) into staging slot `slot`, in [0, BACKEND_STAGES), and returns at once: on a
   * device backend the copy runs on a stream of its own, beside the ops queued before it (and
   * after those that read the slot's previous contents). tensor_from_staged(t, slot) queues
   * what tensor_from_nchw does, from the slot, ordered after its copy; count must be t's.
   * host_nchw must stay unchanged until stage_wait(slot) returns (the copy has read it). A slot
   * is staged, then taken once: staging it again before it is taken, or taking it twice, is an
   * error. Neither may happen while a device graph records. The CPU backend copies at once. */
  void (*stage_input)(int slot, const float *host_nchw, size_t count);
  void (*stage_wait)(int slot);
  void (*tensor_from_staged)(tensor *t, int slot);
  void (*copy)(void *dst, const void *src, fp_dtype type, size_t count);
  /* dst[i] = src[i] converted (f32 <-> bf16, rounding to nearest even) */
  void (*convert)(void *dst, fp_dtype dst_type, const void *src, fp_dtype src_type, size_t count);

  /* tensors: t's shape and dtype are set by the caller; tensor_alloc sets t->data (zeroed) */
  size_t (*tensor_bytes)(const tensor *t);
  void (*tensor_alloc)(tensor *t);
  void (*tensor_release)(tensor *t);
  /* host float32 NCHW <-> the stored layout and dtype */
  void (*tensor_from_nchw)(tensor *t, const float *host_nchw);
  void (*tensor_to_nchw)(const tensor *t, float *host_nchw);

  /* convolution; bias (f32) may be NULL (grad_bias then ignored) */
  void (*conv2d_forward)(const conv_desc *d, const tensor *x, const void *weights,
                         const float *bias, tensor *y);
  void (*conv2d_backward_data)(const conv_desc *d, const tensor *dy, const void *weights,
                               tensor *dx);
  void (*conv2d_backward_weights)(const conv_desc *d, const tensor *x, const tensor *dy,
                                  float *grad_weights, float *grad_bias);

  /* Inference: y = relu?(conv(x) + bias + residual) in one op (the epilogue's fields); bias may
   * be NULL. */
  void (*conv2d_forward_fused)(const conv_desc *d, const tensor *x, const void *weights,
                               const float *bias, const conv_epilogue *epilogue, tensor *y);
  /* Folds an inference batch norm into the convolution before it. Per output channel o, with
   * s = gamma[o] / sqrt(var[o] + eps): folded_weights = weights x s (f32 OIHW master weights in,
   * OIHW in `type` out, rounded once) and folded_bias[o] = beta[o] + (conv_bias[o] - mean[o]) x s
   * (conv_bias NULL: 0). conv(x, folded) + folded_bias is then the batch norm of conv(x). */
  void (*batchnorm_fold)(const conv_desc *d, const float *weights, const float *conv_bias,
                         const float *gamma, const float *beta, const float *mean, const float *var,
                         float eps, void *folded_weights, fp_dtype type, float *folded_bias);

  /* batch norm over N,H,W per channel; batch_var is the biased variance; y may alias x */
  void (*batchnorm_forward_training)(const tensor *x, const float *gamma, const float *beta,
                                     float eps, tensor *y, float *batch_mean, float *batch_var);
  void (*batchnorm_forward_inference)(const tensor *x, const float *gamma, const float *beta,
                                      const float *running_mean, const float *running_var,
                                      float eps, tensor *y);
  void (*batchnorm_backward)(const tensor *x, const tensor *dy, const float *gamma,
                             const float *batch_mean, const float *batch_var, float eps, tensor *dx,
                             float *grad_gamma, float *grad_beta);
  /* running = (1-momentum)*running + momentum*batch, variance unbiased by
   * count/(count-1) as PyTorch does */
  void (*batchnorm_update_running)(float *running_mean, float *running_var, const float *batch_mean,
                                   const float *batch_var, int channels, float momentum,
                                   size_t count_per_channel);
  /* Synchronized batch norm, between the all-reduces of backend memory that the model queues
   * (the values stay on the device). global_mean is the mean over ranks of every rank's
   * batch_mean: batch_var += (batch_mean - global_mean)^2, then batch_mean = global_mean (the
   * mean over ranks of the result is the global batch's variance). */
  void (*batchnorm_sync_moments)(float *batch_mean, float *batch_var, const float *global_mean,
                                 int channels);
  /* batchnorm_backward subtracts this rank's means of dy (grad_beta / count) and of dy * xhat
   * (grad_gamma / count); the global batch's differ by mean_grads (the means over ranks of
   * grad_gamma, then grad_beta: 2 x channels). Per channel, with g = gamma / sqrt(batch_var +
   * eps): scale = g * (grad_gamma - mean) / count, shift = g * (grad_beta - mean) / count, which
   * the model adds to dx as scale * xhat + shift. */
  void (*batchnorm_sync_backward_terms)(const float *grad_gamma, const float *grad_beta,
                                        const float *mean_grads, const float *gamma,
                                        const float *batch_var, float eps, size_t count_per_channel,
                                        int channels, float *scale, float *shift);

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

  /* global max pool to [N,C,1,1]: each channel's first maximum (a NaN counts as the maximum,
   * as in PyTorch); backward gives dy to that position and 0 elsewhere */
  void (*global_maxpool_forward)(const tensor *x, tensor *y);
  void (*global_maxpool_backward)(const tensor *x, const tensor *dy, tensor *dx);

  /* y [N,C,H,W] = x [N,C,1,1] at every pixel (a branch's output injected as planes); its
   * backward, dx [N,C,1,1] = the sum of dy over the plane */
  void (*broadcast_plane)(const tensor *x, tensor *y);
  void (*sum_plane)(const tensor *dy, tensor *dx);

  /* y = a * b elementwise, same shape and dtype (dropout: b is the keep mask / (1 - p));
   * y may alias a */
  void (*mul)(const tensor *a, const tensor *b, tensor *y);

  /* y = 1 / (1 + exp(-x)) elementwise (a branch's output injected as probabilities); y may
   * alias x. Backward reads the forward output, dx = dy * y * (1 - y); dx may alias dy. */
  void (*sigmoid_forward)(const tensor *x, tensor *y);
  void (*sigmoid_backward)(const tensor *y, const tensor *dy, tensor *dx);

  /* fully connected: x [N,in] (any tensor, flattened per sample in NCHW order), weights
   * [out,in] in x's dtype, bias [out] f32 -> y [N,out,1,1] */
  void (*inner_product_forward)(const tensor *x, const void *weights, const float *bias, tensor *y);
  void (*inner_product_backward)(const tensor *x, const tensor *dy, const void *weights, tensor *dx,
                                 float *grad_weights, float *grad_bias);

  /* Softmax cross-entropy over channels, in f32 whatever the logits' dtype, with per-class
   * weights and an ignore label, reduced like PyTorch's mean: sum(w[t]*nll)/sum(w[t]) over
   * pixels whose label t != ignore_label. Writes scalars[SCALAR_LOSS],
   * scalars[SCALAR_LOSS_WEIGHT] and scalars[SCALAR_BAD_LABELS], and (if grad_logits is not NULL)
   * grad_scale [* grad_factor] * d loss / d logits. A label >= C that is not ignore_label is an
   * error: a host backend may stop at once; a device backend counts such labels in
   * SCALAR_BAD_LABELS (and gives them weight 0) rather than wait for the device, and
   * unet_read_scalars stops there. labels: u8 [N,H,W]; class_weights: f32 [C]. grad_factor: NULL,
   * or one f32 of backend memory read when the op runs (a value that changes every step, which a
   * device graph then replays without recording it anew). */
  void (*softmax_cross_entropy)(const tensor *logits, const uint8_t *labels,
                                const float *class_weights, int ignore_label, float grad_scale,
                                const float *grad_factor, tensor *grad_logits, double *scalars);
  /* Multilabel loss of logits [N,K,1,1] against targets f32 [N*K] in {0,1} (or soft):
   * scalars[SCALAR_CLASS_LOSS] = mean over the N*K entries of
   * max(x,0) - x*t + log(1 + exp(-|x|)) (torch's BCEWithLogitsLoss), in f32/f64 whatever the
   * logits' dtype; grad (if not NULL) = grad_scale * (sigmoid(x) - t) / (N*K). */
  void (*sigmoid_bce)(const tensor *logits, const float *targets, float grad_scale, tensor *grad,
                      double *scalars);
  /* Box loss of x [N,4K,1,1] (per class the (y0,x0,y1,x1) logits) against targets f32 [N*4K] in
   * [0,1], counting only the classes whose mask f32 [N*K] is 1: with s = sigmoid(x), d = s - t,
   * smooth-L1 l(d) = d^2/2 for |d| < 1 else |d| - 1/2 (torch's SmoothL1Loss, beta 1);
   * scalars[SCALAR_BOX_COUNT] = 4 * the number of present (n, k), scalars[SCALAR_BOX_LOSS] =
   * their sum of l / that count (0 when none); grad (if not NULL) = grad_scale [* grad_factor,
   * as in softmax_cross_entropy] * mask * l'(d) * s (1 - s) / that count. */
  void (*sigmoid_smooth_l1)(const tensor *x, const float *targets, const float *mask,
                            float grad_scale, const float *grad_factor, tensor *grad,
                            double *scalars);
  /* per-pixel argmax over channels (the first largest logit) -> u8 [N,H,W]; with confidence
   * (f32 [N,H,W], may be NULL) also the softmax probability of that class, 1 / sum_k
   * exp(x_k - x_max), computed in f32: what inference needs of the softmax, one value a pixel
   * instead of K. A channel at -inf counts as probability 0; at least one channel per pixel
   * must be finite. */
  void (*argmax_channels)(const tensor *logits, uint8_t *predictions, float *confidence);
  /* parse_catalog's per-image, per-class sums (class_sums.h) over a batch of argmax_channels'
   * results, predictions and confidence [batch][H][W]: for image b only the pixels inside its
   * box count (boxes[b*4..b*4+3] = top, left, bottom, right, half-open, whole numbers in f32),
   * and its predictions outside the box are set to outside_label. photos: u8 [batch][H][W][3],
   * the letterboxed RGB; linear: f32 [256], the linear-RGB value of each sRGB byte (the
   * caller's table). sums: f64 [batch][classes][CLASS_SUMS]. Predictions inside a box must be
   * below classes. */
  void (*class_statistics)(uint8_t *predictions, const float *confidence, const uint8_t *photos,
                           const float *boxes, const float *linear, int batch, int height,
                           int width, int classes, uint8_t outside_label, double *sums);

  /* For gradients that are loss_scale times the true ones (loss scaling; loss_scale a power of
   * two, 1 = none): scalars[SCALAR_GRAD_NORM] = the true norm, sqrt(sum g^2) / loss_scale;
   * scalars[SCALAR_NONFINITE] = 1 when it is NaN or infinite, else 0; and
   * scalars[SCALAR_CLIP_FACTOR] = (float)(clip_norm/(norm+1e-6)) when 0 < clip_norm < norm, else
   * 1 (torch.nn.utils.clip_grad_norm_), divided by loss_scale, so that the update sees exactly
   * the clipped true gradients. */
  void (*gradient_norm)(const float *grads, size_t count, double clip_norm, double loss_scale,
                        double *scalars);
  /* One Adam/AdamW step on f32 master weights with the gradients times the clip factor, at
   * scalars[SCALAR_LR] and step scalars[SCALAR_STEP]; same arithmetic as torch.optim (1.13).
   * Changes nothing when scalars[SCALAR_NONFINITE] is set (a skipped step). */
  void (*adam_update)(float *params, const float *grads, float *exp_avg, float *exp_avg_sq,
                      size_t count, const adam_config *cfg, const double *scalars);
  /* how many distinct primitives fell back to a reference (slow) implementation */
  int (*reference_primitive_count)(void);
  /* the cudaStream_t every op is queued on (collectives on device buffers order themselves
   * after it); NULL for host backends */
  void *(*device_stream)(void);

  /* Device graphs (CUDA graphs); NULL on backends without them. Between capture_begin and
   * capture_end the ops are recorded, not run: they must be ops whose memory is already
   * allocated and whose algorithms are already chosen (the same ops run once before: no
   * allocation, workspace growth, algorithm search, upload or download may happen while
   * recording, and a backend stops with an error naming what did). capture_end returns the
   * graph, or NULL with `why` filled when the device refused it (nothing recorded has run
   * then). graph_current returns 0 when the graph is stale: the backend's own scratch memory
   * has moved since (a larger shape run eagerly in between), and the pass must run eagerly and
   * be recorded again. graph_replay queues a current graph's ops again, with the pointers and
   * host arguments they had when recorded, reading the memory's current contents (a stale one
   * is an error). */
  void (*capture_begin)(void);
  void *(*capture_end)(char *why, size_t why_size);
  int (*graph_current)(const void *graph);
  void (*graph_replay)(void *graph);
  void (*graph_release)(void *graph);
} backend;

/* Shape check of the vector ops (global pools, broadcast over a plane and its sum): v is
 * [N,C,1,1] for planes [N,C,H,W] of the same dtype, else fatal naming op. */
void backend_check_vector(const char *op, const tensor *v, const tensor *planes);

/* stage_input's contract, the same on every backend: a slot holds `count` staged floats until
 * taken. backend_stage_begin checks that `slot` may be staged and marks it staged;
 * backend_stage_take checks that it is staged with t's element count and marks it taken. */
typedef struct stage_state {
  size_t count;
  int staged;
} stage_state;
void backend_stage_begin(stage_state states[BACKEND_STAGES], int slot, size_t count);
void backend_stage_take(stage_state states[BACKEND_STAGES], int slot, const tensor *t);

/* The backend named `name`: "cpu", "cuda", or "auto" (cuda when it is built in and a GPU is
 * visible, else cpu). Returns NULL and fills `why` when there is none by that name, it is not
 * built into this program, or it cannot run here (no GPU). On success `why` is "" or, where
 * auto did not take cuda, why not ("auto: cuda: no CUDA device visible (...)"). */
const backend *backend_open(const char *name, char *why, size_t why_size);

#endif
