/* U-Net with a ResNet18/34 encoder and the decoder of
 * segmentation_models_pytorch's Unet. Forward and backward are written out
 * explicitly; every op goes through the backend table.
 *
 * All parameters live in one contiguous f32 buffer (`params`, the master weights), all gradients
 * in another of the same layout (`grads`, f32), BN running statistics in a third (`buffers`).
 * Each is described by a list of named tensors whose names are PyTorch's
 * named_parameters()/named_buffers() of the twin model.
 *
 * Precision: activations are in `compute` (f32 or bf16). In bf16 the convolutions read a bf16
 * copy of the parameter buffer (`compute_params`), made from the master weights at most once per
 * change of the weights (unet_weights_changed marks a change); loss, gradients, BN statistics
 * and the optimiser stay f32 (backend.h's precision contract).
 *
 * Mode: a training model holds every activation backward needs and every gradient; an
 * inference model (evaluate, parse_catalog) holds no gradients, and its activations share a
 * ring of a few buffers except the encoder features the decoder's skips read later. */
#ifndef FP_UNET_H
#define FP_UNET_H

#include <stdint.h>

#include "backend.h"

enum { NAMED_TENSOR_NAME_MAX = 96 };

typedef struct named_tensor {
  char name[NAMED_TENSOR_NAME_MAX];
  int ndims;
  int dims[4];
  size_t offset, count; /* in elements, within the owning buffer */
} named_tensor;

typedef struct tensor_list {
  named_tensor *items;
  int count, capacity;
  size_t total; /* elements */
} tensor_list;

typedef enum unet_arch { UNET_R18, UNET_R34 } unet_arch;

/* Parses "r18"/"r34"; returns 0 on success. */
int unet_arch_parse(const char *name, unet_arch *arch);
const char *unet_arch_name(unet_arch arch);

typedef struct conv_layer {
  conv_desc desc;
  size_t weight, bias; /* offsets into params/grads; bias only if has_bias */
  int has_bias;
} conv_layer;

typedef struct bn_layer {
  int channels;
  size_t gamma, beta;               /* offsets into params/grads */
  size_t running_mean, running_var; /* offsets into buffers */
  size_t batch_mean, batch_var;     /* offsets into batch_stats (training), saved for backward */
} bn_layer;

/* conv -> BN -> optional ReLU (in place on `out`) */
typedef struct conv_bn {
  conv_layer conv;
  bn_layer bn;
  int relu;
  tensor conv_out, out;
  tensor grad_conv_out;
} conv_bn;

typedef struct basic_block {
  conv_bn conv1, conv2;
  int has_downsample;
  conv_bn downsample;
  tensor grad_out;      /* gradient w.r.t. the block output (conv2.out after add+ReLU) */
  tensor grad_mid;      /* gradient w.r.t. conv1.out */
  tensor grad_identity; /* gradient w.r.t. the block input through the downsample path */
} basic_block;

typedef struct encoder_stage {
  int block_count;
  basic_block *blocks;
  tensor grad_input; /* gradient w.r.t. the stage input before it joins the skip's */
} encoder_stage;

typedef struct decoder_block {
  int has_skip;
  tensor upsampled, concatenated;
  conv_bn conv1, conv2;
  tensor grad_upsampled, grad_concatenated, grad_mid, grad_out;
} decoder_block;

/* Data-parallel training hooks; all NULL (the default) on a single rank. */
typedef struct unet_parallel {
  void *ctx;
  /* Called during unet_backward whenever every gradient at offsets >= final_from has its final
   * value, so their all-reduce can start while the rest of backward runs. */
  void (*grads_ready)(void *ctx, size_t final_from);
  /* Sums count host floats over all ranks, in place (synchronized batch norm). */
  void (*sum_across_ranks)(void *ctx, float *host_values, size_t count);
  int world_size;
} unet_parallel;

typedef enum unet_mode { UNET_TRAINING, UNET_INFERENCE } unet_mode;

typedef struct unet_config {
  unet_arch arch;
  int classes, batch, height, width;
  fp_dtype compute; /* FP_F32 or FP_BF16 */
  unet_mode mode;
} unet_config;

/* Inference mode: how many buffers the transient activations take turns in. Four is what the
 * encoder blocks need (input, conv1, conv2, downsample) and the decoder blocks (input,
 * upsampled, concatenated, conv1; conv2 may then take the input's buffer). */
enum { UNET_RING_SLOTS = 4 };

typedef enum activation_kind {
  ACTIVATION_KEPT,      /* its own buffer in either mode (input, skips, logits) */
  ACTIVATION_TRANSIENT, /* its own buffer in training mode, a ring slot in inference mode */
  ACTIVATION_GRADIENT,  /* training mode only */
  ACTIVATION_SCRATCH,   /* training mode only, one buffer shared by every such tensor */
  ACTIVATION_ALIAS      /* the data of another tensor (in-place batch norm when inferring) */
} activation_kind;

typedef struct activation {
  tensor *t;
  activation_kind kind;
  const tensor *alias_of;
} activation;

typedef struct unet {
  const backend *be;
  unet_arch arch;
  int classes, batch, height, width;
  fp_dtype compute;
  unet_mode mode;
  float bn_momentum, bn_eps;

  tensor_list param_list, buffer_list;
  float *params, *grads, *buffers; /* backend memory; grads NULL in inference mode */
  float *batch_stats;              /* training: every BN layer's batch mean and variance */
  size_t batch_stat_count;
  void *compute_params; /* params in `compute`; == params when that is f32 */
  int compute_params_stale;
  double *scalars; /* backend memory, SCALAR_COUNT (backend.h) */

  /* every activation tensor, in the order forward first writes them (the ring relies on it) */
  activation *activations;
  int activation_count, activation_capacity;
  void *ring[UNET_RING_SLOTS]; /* inference mode */
  size_t ring_bytes;           /* of each slot */
  void *scratch;               /* training mode: the ACTIVATION_SCRATCH buffer */
  size_t scratch_bytes;

  tensor input; /* [batch,3,H,W] */
  conv_bn stem;
  pool_desc pool;
  tensor pooled, grad_pooled;
  encoder_stage stages[4];
  decoder_block decoder[5];
  conv_layer head;
  tensor logits, grad_logits;
  tensor grad_stem_out, grad_stem_pool;

  unet_parallel parallel;
  /* Synchronized BN (unet_enable_sync_bn): statistics over the whole global batch. */
  int sync_bn;
  void *sync_scratch;             /* backend memory, scratch_bytes */
  float *sync_scale, *sync_shift; /* backend memory, per-channel correction terms */
  float *host_stats;              /* host, 4 x the widest layer's channels */
} unet;

/* Builds the model and allocates every activation for batches of `batch`
 * images of height x width (multiples of 32). Parameters are initialised from
 * seed as the twin does (kaiming/xavier, BN 1/0). */
unet *unet_create(const backend *be, const unet_config *config, uint64_t seed);
/* Call after anything writes m->params (optimiser step, checkpoint load, broadcast, a test):
 * the next forward remakes the compute-precision copy. */
void unet_weights_changed(unet *m);
/* The step's scalars (backend.h, SCALAR_*), read back from the backend: once per step. */
void unet_read_scalars(const unet *m, double scalars[SCALAR_COUNT]);
/* Parameter `offset` (an element offset into params) in the compute precision. */
const void *unet_compute_weights(const unet *m, size_t offset);
void unet_destroy(unet *m);
/* Backend bytes the model's activation and gradient tensors take (each buffer once). */
size_t unet_activation_bytes(const unet *m);
/* Batch norm in training mode normalises with the mean and variance of the global batch (all
 * ranks, through parallel.sum_across_ranks, which must be set), and its backward accounts for
 * it, so N ranks with batch b compute what one rank with batch N*b computes. Every rank's
 * batch must have the same size. */
void unet_enable_sync_bn(unet *m);

/* input must already hold the batch (be->tensor_from_nchw(&m->input, ...)). */
void unet_forward(unet *m, int training);
/* Training mode only. Requires grad_logits to be set; overwrites every gradient in m->grads. */
void unet_backward(unet *m);

/* Output feature of encoder stage 0..3 (layer1..layer4). */
const tensor *unet_stage_output(const unet *m, int stage);

const named_tensor *tensor_list_find(const tensor_list *list, const char *name);

#endif
