/* U-Net with a ResNet18/34 or VGG16/19 (with or without batch norm) encoder and the decoder of
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

typedef enum unet_arch {
  UNET_R18,
  UNET_R34,
  UNET_VGG16,
  UNET_VGG16_BN,
  UNET_VGG19,
  UNET_VGG19_BN
} unet_arch;

/* The job-file words, the one list: "r18|r34|vgg16|vgg16_bn|vgg19|vgg19_bn". */
#define UNET_ARCH_WORDS "r18|r34|vgg16|vgg16_bn|vgg19|vgg19_bn"
/* Parses one of UNET_ARCH_WORDS; returns 0 on success. */
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

/* conv -> optional BN -> optional ReLU (in place on `out`). Without BN the convolution writes
 * `out` itself (conv_out and grad_conv_out unused). An inference model runs the unit as one
 * fused op writing `out` (unet.folded). */
typedef struct conv_bn {
  conv_layer conv;
  int has_bn;
  bn_layer bn;
  int relu;
  tensor conv_out, out;
  tensor grad_conv_out;
  size_t folded_weight, folded_bias; /* with BN, inferring: offsets into folded_convs' buffers */
} conv_bn;

/* Inference mode: every batch norm that follows a convolution is folded into it (backend.h,
 * batchnorm_fold), and each conv(+BN)(+residual add)(+ReLU) runs as one fused op
 * (conv2d_forward_fused). The folded weights are remade from the master weights and running
 * statistics before the first forward after unet_weights_changed. */
typedef struct folded_convs {
  int enabled; /* inference mode, unless unet_config.unfolded */
  int stale;
  conv_bn **units; /* the units with batch norm, in build order */
  int count, capacity;
  void *weights; /* backend memory, the compute precision, OIHW per unit */
  float *biases; /* backend memory, f32 */
  size_t weight_total, bias_total;
} folded_convs;

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

/* torchvision's ResNet18/34 without avgpool and fc: f1 = the stem's output, f2..f5 = layer1..4 */
typedef struct resnet_encoder {
  conv_bn stem;
  pool_desc pool;
  tensor pooled, grad_pooled;
  tensor grad_stem_out, grad_stem_pool;
  encoder_stage stages[4];
} resnet_encoder;

enum { VGG_BLOCKS = 5, VGG_MAX_CONVS = 4 };

/* One block of torchvision's VGG `features`: (for blocks after the first) the previous block's
 * output max-pooled, then 3x3 convs with bias (+ BN) + ReLU. */
typedef struct vgg_block {
  int conv_count;
  conv_bn convs[VGG_MAX_CONVS];
  tensor pooled, grad_pooled; /* blocks 1..4: the input */
  tensor grad_out;            /* gradient w.r.t. the block output */
  tensor grad_unpooled;       /* scratch: the next block's input gradient, un-pooled */
  tensor grad_mid[2];         /* gradients between the convs, alternating */
} vgg_block;

/* segmentation_models_pytorch's VGG encoder: f1..f4 = blocks 1..4's outputs (block 0's, at full
 * resolution, feeds no skip), f5 = the last block's output max-pooled. */
typedef struct vgg_encoder {
  vgg_block blocks[VGG_BLOCKS];
  pool_desc pool;
  tensor final_pooled, grad_final_pooled;
} vgg_encoder;

typedef enum encoder_kind { ENCODER_RESNET, ENCODER_VGG } encoder_kind;

/* What the decoder sees of any encoder: the features f1..f5 (1/2 .. 1/32 of the input) and the
 * tensors their gradients go to (the decoder overwrites them; the encoder's backward reads
 * them). */
typedef struct encoder {
  encoder_kind kind;
  union {
    resnet_encoder resnet;
    vgg_encoder vgg;
  };
  const tensor *features[5];
  tensor *feature_grads[5];
} encoder;

typedef struct decoder_block {
  int has_skip;
  tensor upsampled, concatenated;
  /* injected (branches.inject_blocks): the branches' vector as planes, joined to the input */
  int injected;
  tensor planes, with_planes, grad_with_planes, grad_planes;
  conv_bn conv1, conv2;
  tensor grad_upsampled, grad_concatenated, grad_mid, grad_out;
} decoder_block;

/* Fully connected layer: weight [out,in] and bias [out], offsets into params/grads. */
typedef struct fc_layer {
  int in, out;
  size_t weight, bias;
} fc_layer;

/* The Extended U-Net's branches, fed by the deepest features' average and max pools:
 * class branch: FC 512 + ReLU + BN + dropout + FC -> K class-presence logits;
 * box branch: FC 512 + ReLU + FC -> 4K box logits (per class y0, x0, y1, x1). */
typedef enum branch_mode {
  BRANCHES_NONE,
  BRANCHES_TRAINED, /* trained with their losses, not injected into the decoder */
  BRANCHES_INJECTED /* also injected into the decoder blocks of inject_blocks */
} branch_mode;
#define BRANCH_MODE_WORDS "none|trained|injected"
int branch_mode_parse(const char *name, branch_mode *mode);
const char *branch_mode_name(branch_mode mode);

enum { BRANCH_HIDDEN = 512 };

typedef struct branch_config {
  branch_mode mode;
  unsigned inject_blocks; /* BRANCHES_INJECTED: bit i for decoder block i (0 = deepest) */
  float dropout;          /* the class branch's dropout probability (paper: 0.25) */
} branch_config;

typedef struct class_branch {
  fc_layer fc1, fc2;
  bn_layer bn;
  tensor hidden, normed, dropped, logits, probabilities;
  tensor keep_mask; /* training: the dropout draw (branch_targets.h) */
  tensor grad_logits, grad_dropped, grad_normed, grad_hidden, grad_probabilities;
} class_branch;

typedef struct box_branch {
  fc_layer fc1, fc2;
  tensor hidden, logits, boxes;
  tensor grad_logits, grad_hidden, grad_boxes, grad_pooled;
} box_branch;

typedef struct branches {
  branch_mode mode;
  unsigned inject_blocks; /* bit i: decoder block i's input gets the planes */
  float dropout;
  uint64_t dropout_seed;
  float *host_keep_mask;
  tensor average, maximum, pooled;
  tensor grad_pooled, grad_average, grad_maximum, grad_from_average, grad_from_maximum;
  class_branch cls;
  box_branch box;
  /* [N,5K,1,1]: class probabilities (or the ground truth's presence) then the boxes */
  tensor injected, grad_injected, grad_injected_block;
  tensor ground_truth; /* [N,K,1,1]: class presence injected instead (inference) */
  int use_ground_truth;
  /* backend memory, f32 [N*K], [N*4K] and [N*K]: class presence, boxes, where the box loss
   * counts (branch_targets_from_batch) */
  float *target_presence, *target_boxes, *target_box_mask;
  size_t first_param; /* offset of the branches' first parameter */
} branches;

/* Data-parallel training hooks; all NULL (the default) on a single rank. */
typedef struct unet_parallel {
  void *ctx;
  /* Called during unet_backward whenever every gradient at offsets >= final_from has its final
   * value, so their all-reduce can start while the rest of backward runs. */
  void (*grads_ready)(void *ctx, size_t final_from);
  /* Replaces count floats of backend memory by their mean over all ranks (synchronized batch
   * norm): ops queued after it read the mean; the host need not have waited for it. */
  void (*mean_across_ranks)(void *ctx, float *values, size_t count);
  /* The smallest of value over all ranks (host; every rank calls it at the same point): how
   * the ranks agree whether a pass replays, records or runs eagerly (pass_graph.h). */
  int (*smallest_across_ranks)(void *ctx, int value);
  int world_size;
} unet_parallel;

typedef enum unet_mode { UNET_TRAINING, UNET_INFERENCE } unet_mode;

typedef struct unet_config {
  unet_arch arch;
  int classes, batch, height, width;
  fp_dtype compute; /* FP_F32 or FP_BF16 */
  unet_mode mode;
  branch_config branches; /* mode BRANCHES_NONE (zero): the plain U-Net */
  /* inference mode: batch norm, residual add and ReLU as ops of their own, as a training model
   * runs its eval passes (bench --fold 0, and the reference in tests), not folded (unet.folded) */
  int unfolded;
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

/* Where the activation tensors live. */
typedef struct activation_memory {
  /* every activation tensor, in the order forward first writes them (the ring relies on it) */
  activation *list;
  int count, capacity;
  void *ring[UNET_RING_SLOTS]; /* inference mode */
  size_t ring_bytes;           /* of each slot */
  void *scratch;               /* training mode: the ACTIVATION_SCRATCH buffer */
  size_t scratch_bytes;
} activation_memory;

/* Synchronized BN (unet_enable_sync_bn): statistics over the whole global batch. */
typedef struct sync_bn_state {
  int enabled;
  void *scratch;        /* backend memory, activation_memory.scratch_bytes */
  float *scale, *shift; /* backend memory, per-channel correction terms */
  float *means;         /* backend memory, 2 x widest: means over ranks */
  int widest;           /* channels of the widest batch-norm layer */
} sync_bn_state;

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
  folded_convs folded;
  double *scalars; /* backend memory, SCALAR_COUNT (backend.h) */

  activation_memory memory;

  tensor input; /* [batch,3,H,W] */
  encoder enc;
  branches br;
  decoder_block decoder[5];
  conv_layer head;
  tensor logits, grad_logits;

  unet_parallel parallel;
  sync_bn_state sync;

  /* Backward marks each parameter tensor's gradient final (by param_list index) and checks,
   * whenever it reports gradients ready to all-reduce, that every one it reports is. */
  uint8_t *grad_final;

  /* The encoder's parameters are the first encoder_params of the buffer (registered first).
   * Frozen (unet_freeze_encoder): backward stops at the decoder, computing no encoder gradient,
   * and the optimiser updates only the rest; batch norm still runs in training mode. */
  size_t encoder_params;
  int encoder_frozen;
} unet;

/* Builds the model and allocates every activation for batches of `batch`
 * images of height x width (multiples of 32). Parameters are initialised from
 * seed as the twin does (kaiming/xavier, BN 1/0). */
unet *unet_create(const backend *be, const unet_config *config, uint64_t seed);
/* Call after anything writes m->params or m->buffers (optimiser step, checkpoint load,
 * broadcast, a test): the next forward remakes the compute-precision copy (and an inference
 * model's folded convolutions). */
void unet_weights_changed(unet *m);
/* Remakes the compute-precision copy and the folded convolutions now (queued on the backend) if
 * a change was marked. */
void unet_refresh_compute_weights(unet *m);
/* The step's scalars (backend.h, SCALAR_*), read back from the backend: once per step. */
void unet_read_scalars(const unet *m, double scalars[SCALAR_COUNT]);
/* Parameter `offset` (an element offset into params) in the compute precision. */
const void *unet_compute_weights(const unet *m, size_t offset);
void unet_destroy(unet *m);
/* Backend bytes the model's activation and gradient tensors take (each buffer once). */
size_t unet_activation_bytes(const unet *m);
/* Batch norm in training mode normalises with the mean and variance of the global batch (all
 * ranks, through parallel.mean_across_ranks, which must be set), and its backward accounts for
 * it, so N ranks with batch b compute what one rank with batch N*b computes. Every rank's
 * batch must have the same size. */
void unet_enable_sync_bn(unet *m);

/* Freezes (1) or unfreezes (0) the encoder; see unet.encoder_frozen. */
void unet_freeze_encoder(unet *m, int frozen);
/* The first parameter offset whose gradient backward computes (encoder_params when frozen). */
size_t unet_trained_from(const unet *m);

/* input must already hold the batch (be->tensor_from_nchw(&m->input, ...)). */
void unet_forward(unet *m, int training);
/* Training mode only. Requires grad_logits to be set; overwrites every gradient in m->grads. */
void unet_backward(unet *m);

const named_tensor *tensor_list_find(const tensor_list *list, const char *name);

/* ------------------------------------------------------------ branches */

/* Draws the class branch's dropout mask of the next training forwards (optimiser step `step`,
 * this rank's images being those from first_sample of the global batch: branch_targets.h) and
 * uploads it, outside any pass, so that a device graph replays with the new mask. unet_create
 * draws step 0's, first_sample 0. */
void unet_set_dropout_draw(unet *m, uint64_t step, long first_sample);
/* Inject presence (host f32 [batch*classes], 0/1) instead of the class branch's output in the
 * next forwards (ground-truth injection); NULL goes back to the branch's output. */
void unet_inject_ground_truth(unet *m, const float *host_presence);
/* Uploads the batch's branch targets (host, branch_targets_from_batch's layout); box_mask NULL:
 * the box loss counts where a class is present. */
void unet_set_branch_targets(unet *m, const float *presence, const float *boxes,
                             const float *box_mask);

/* How a training step's loss is made (the compound loss of the Extended U-Net). */
typedef struct loss_spec {
  const uint8_t *labels;      /* backend memory, u8 [batch,H,W] */
  const float *class_weights; /* backend memory, f32 [classes] */
  int ignore_label;
  float class_loss_weight, box_loss_weight; /* w_cls, w_box */
  /* Backend memory, f32 [2], or NULL for 1 and 1: the scales of the cross-entropy's and the box
   * loss's gradients that normalise them over the global batch across ranks, read when the loss
   * runs (they change every step; a device graph replays with the values uploaded before it).
   * The class-presence BCE, a mean over the same count on every rank, needs none. */
  const float *term_scales;
  float loss_scale; /* loss scaling: every term's gradient times this power of two (1 = none) */
} loss_spec;
/* Queues the losses on the backend: the weighted cross-entropy (SCALAR_LOSS), and with branches
 * the class-presence BCE (SCALAR_CLASS_LOSS) and box smooth-L1 (SCALAR_BOX_LOSS, BOX_COUNT)
 * against the targets unet_set_branch_targets gave. With gradients (training) each term's
 * gradient is its weight x the loss scale x its term scale x d term; without, the scalars. */
void unet_loss(unet *m, const loss_spec *spec, int gradients);
/* The compound loss: cross-entropy + w_cls x BCE + w_box x box loss. */
double unet_total_loss(const loss_spec *spec, double segmentation, double class_loss,
                       double box_loss);

#endif
