/* U-Net with a ResNet18/34 encoder and the decoder of
 * segmentation_models_pytorch's Unet. Forward and backward are written out
 * explicitly; every op goes through the backend table.
 *
 * All parameters live in one contiguous buffer (`params`), all gradients in
 * another of the same layout (`grads`), BN running statistics in a third
 * (`buffers`). Each is described by a list of named tensors whose names are
 * PyTorch's named_parameters()/named_buffers() of the twin model. */
#ifndef FP_UNET_H
#define FP_UNET_H

#include <stdint.h>

#include "backend.h"

enum { NAMED_TENSOR_NAME_MAX = 96 };

typedef struct named_tensor {
  char name[NAMED_TENSOR_NAME_MAX];
  int ndims;
  int dims[4];
  size_t offset, count; /* in floats, within the owning buffer */
} named_tensor;

typedef struct tensor_list {
  named_tensor *items;
  int count, capacity;
  size_t total; /* floats */
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
  float *batch_mean, *batch_var;    /* backend memory, saved for backward */
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

typedef struct unet {
  const backend *be;
  unet_arch arch;
  int classes, batch, height, width;
  float bn_momentum, bn_eps;

  tensor_list param_list, buffer_list;
  float *params, *grads, *buffers; /* backend memory */

  tensor input; /* [batch,3,H,W] */
  conv_bn stem;
  pool_desc pool;
  tensor pooled, grad_pooled;
  encoder_stage stages[4];
  decoder_block decoder[5];
  conv_layer head;
  tensor logits, grad_logits;
  tensor grad_stem_out, grad_stem_pool;
  float *grad_scratch; /* shared by every conv_bn's grad_conv_out */

  unet_parallel parallel;
  /* Synchronized BN (unet_enable_sync_bn): statistics over the whole global batch. */
  int sync_bn;
  float *sync_scratch;                /* backend memory, one conv output */
  float *sync_scale, *sync_shift;     /* backend memory, per-channel correction terms */
  float *host_stats;                  /* host, 4 x the widest layer's channels */
} unet;

/* Builds the model and allocates every activation for batches of `batch`
 * images of height x width (multiples of 32). Parameters are initialised from
 * seed as the twin does (kaiming/xavier, BN 1/0). */
unet *unet_create(const backend *be, unet_arch arch, int classes, int batch, int height, int width,
                  uint64_t seed);
void unet_destroy(unet *m);
/* Batch norm in training mode normalises with the mean and variance of the global batch (all
 * ranks, through parallel.sum_across_ranks, which must be set), and its backward accounts for
 * it, so N ranks with batch b compute what one rank with batch N*b computes. Every rank's
 * batch must have the same size. */
void unet_enable_sync_bn(unet *m);

/* input must already hold the batch (be->tensor_from_nchw(&m->input, ...)). */
void unet_forward(unet *m, int training);
/* Requires grad_logits to be set; overwrites every gradient in m->grads. */
void unet_backward(unet *m);

/* Output feature of encoder stage 0..3 (layer1..layer4). */
const tensor *unet_stage_output(const unet *m, int stage);

const named_tensor *tensor_list_find(const tensor_list *list, const char *name);

#endif
