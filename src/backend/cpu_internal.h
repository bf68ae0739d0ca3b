/* Shared by the CPU backend's files (never included above src/backend): the oneDNN engine and
 * stream, memory descriptors, primitive creation and execution, reorders and staging buffers.
 *
 * Activations are stored channel-blocked (nChw8c, or nChw16c on AVX-512) when the channel count
 * allows, else plain NCHW, in the tensor's dtype. Every primitive is created once per shape and
 * dtype with format `any` for all its memory descriptors (creating backward primitives with the
 * forward's concrete weights format makes oneDNN fall back to reference code; see shared/notes),
 * and reorders run only where a primitive's chosen format differs from the stored one. */
#ifndef FP_CPU_INTERNAL_H
#define FP_CPU_INTERNAL_H

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "primitive_cache.h"

#define DNNL_CHECK(call)                                                                           \
  do {                                                                                             \
    dnnl_status_t status_ = (call);                                                                \
    if (status_ != dnnl_success)                                                                   \
      FP_FATAL("oneDNN: %s failed: %s", #call, dnnl_status2str(status_));                          \
  } while (0)

enum cpu_workspace_slot { CPU_WS_INPUT, CPU_WS_OUTPUT, CPU_WS_SECOND_INPUT, CPU_WS_COUNT };

typedef struct cpu_state {
  dnnl_engine_t engine;
  dnnl_stream_t stream;
  int channel_block;
  primitive_cache cache;
  int reference_primitives;
  int allow_winograd;
  /* grow-only workspaces (plain f32 copies of tensors for the loops of cpu_loss.c, cpu_heads.c) */
  void *workspace[CPU_WS_COUNT];
  size_t workspace_bytes[CPU_WS_COUNT];
} cpu_state;

extern cpu_state cpu;

/* Keys of the primitive cache: op kind first, then whatever identifies the primitive. */
enum op_kind {
  OP_REORDER = 1,
  OP_CONV,
  OP_BN,
  OP_RELU,
  OP_MAXPOOL,
  OP_UPSAMPLE,
  OP_CONCAT,
  OP_ADD,
  OP_AVGPOOL,
  OP_INNER_PRODUCT,
  OP_CONV_FUSED,
};

typedef struct shape_key {
  int kind, dtype, n, c, h, w, extra[4];
} shape_key;

shape_key make_shape_key(int kind, const tensor *t);

void *cpu_alloc_bytes(size_t bytes);
/* A workspace of at least `bytes`, owned by the backend, valid until the next call with the
 * same slot. */
void *cpu_workspace(int slot, size_t bytes);

dnnl_data_type_t dnnl_type(fp_dtype type);
dnnl_memory_desc_t md_by_tag(int ndims, const dnnl_dim_t *dims, dnnl_data_type_t type,
                             dnnl_format_tag_t tag);
dnnl_memory_desc_t md_4d(fp_dtype type, int n, int c, int h, int w, dnnl_format_tag_t tag);
dnnl_memory_desc_t activation_md(const tensor *t);
dnnl_memory_desc_t plain_md(const tensor *t, fp_dtype type); /* NCHW in `type` */
dnnl_memory_desc_t any_md(const tensor *t);
dnnl_memory_desc_t vector_md(int length); /* f32 */
dnnl_memory_desc_t query_md(const_dnnl_primitive_desc_t pd, dnnl_query_t what);

/* Creates the primitive and records whether oneDNN picked reference code. */
dnnl_primitive_t make_primitive(const void *op_desc, const_dnnl_primitive_desc_t hint,
                                dnnl_primitive_desc_t *pd_out);
/* The same, with attributes (post-ops); attr may be NULL. */
dnnl_primitive_t make_primitive_with_attr(const void *op_desc, const_dnnl_primitive_attr_t attr,
                                          const_dnnl_primitive_desc_t hint,
                                          dnnl_primitive_desc_t *pd_out);

typedef struct exec_arg {
  int arg;
  const dnnl_memory_desc_t *md;
  const void *ptr;
} exec_arg;

void execute(dnnl_primitive_t prim, int count, const exec_arg *args);

void reorder(const dnnl_memory_desc_t *src_md, const void *src, const dnnl_memory_desc_t *dst_md,
             void *dst);

/* A buffer in a primitive's own format (and type), used when it differs from the stored one. */
typedef struct staging {
  dnnl_memory_desc_t stored, wanted;
  int differs;
  void *buffer;
} staging;

void staging_init(staging *s, dnnl_memory_desc_t stored, dnnl_memory_desc_t wanted);
/* Input: a pointer to the data in the wanted format. */
const void *staging_in(staging *s, const void *stored_ptr);
/* Output: where the primitive should write; staging_out_done copies it back. */
void *staging_out(staging *s, void *stored_ptr);
void staging_out_done(staging *s, void *stored_ptr);

#define FP_SAME_SHAPE(a, b)                                                                        \
  ((a)->n == (b)->n && (a)->c == (b)->c && (a)->h == (b)->h && (a)->w == (b)->w)

/* A tensor as plain f32 NCHW, for the ops written as loops: the data itself when it is stored
 * so, else a copy in workspace `slot`. cpu_plain_output gives where to write; cpu_plain_done
 * stores what was written back into the tensor. */
const float *cpu_plain_input(const tensor *t, int slot);
float *cpu_plain_output(const tensor *t, int slot);
void cpu_plain_done(tensor *t, float *plain);

/* The op implementations, one file per concern; cpu_backend.c puts them in the table. */
void cpu_conv2d_forward(const conv_desc *d, const tensor *x, const void *weights, const float *bias,
                        tensor *y);
void cpu_conv2d_forward_fused(const conv_desc *d, const tensor *x, const void *weights,
                              const float *bias, const conv_epilogue *epilogue, tensor *y);
void cpu_conv2d_backward_data(const conv_desc *d, const tensor *dy, const void *weights,
                              tensor *dx);
void cpu_conv2d_backward_weights(const conv_desc *d, const tensor *x, const tensor *dy,
                                 float *grad_weights, float *grad_bias);
void cpu_inner_product_forward(const tensor *x, const void *weights, const float *bias, tensor *y);
void cpu_inner_product_backward(const tensor *x, const tensor *dy, const void *weights, tensor *dx,
                                float *grad_weights, float *grad_bias);

void cpu_batchnorm_forward_training(const tensor *x, const float *gamma, const float *beta,
                                    float eps, tensor *y, float *batch_mean, float *batch_var);
void cpu_batchnorm_forward_inference(const tensor *x, const float *gamma, const float *beta,
                                     const float *running_mean, const float *running_var, float eps,
                                     tensor *y);
void cpu_batchnorm_backward(const tensor *x, const tensor *dy, const float *gamma,
                            const float *batch_mean, const float *batch_var, float eps, tensor *dx,
                            float *grad_gamma, float *grad_beta);
void cpu_batchnorm_fold(const conv_desc *d, const float *weights, const float *conv_bias,
                        const float *gamma, const float *beta, const float *mean, const float *var,
                        float eps, void *folded_weights, fp_dtype type, float *folded_bias);
void cpu_batchnorm_update_running(float *running_mean, float *running_var, const float *batch_mean,
                                  const float *batch_var, int channels, float momentum,
                                  size_t count_per_channel);
void cpu_batchnorm_sync_moments(float *batch_mean, float *batch_var, const float *global_mean,
                                int channels);
void cpu_batchnorm_sync_backward_terms(const float *grad_gamma, const float *grad_beta,
                                       const float *mean_grads, const float *gamma,
                                       const float *batch_var, float eps, size_t count_per_channel,
                                       int channels, float *scale, float *shift);

void cpu_relu_forward(const tensor *x, tensor *y);
void cpu_relu_backward(const tensor *y, const tensor *dy, tensor *dx);
void cpu_maxpool_forward(const pool_desc *d, const tensor *x, tensor *y);
void cpu_maxpool_backward(const pool_desc *d, const tensor *x, const tensor *dy, tensor *dx);
void cpu_global_avgpool_forward(const tensor *x, tensor *y);
void cpu_global_avgpool_backward(const tensor *dy, tensor *dx);
void cpu_upsample2x_forward(const tensor *x, tensor *y);
void cpu_upsample2x_backward(const tensor *dy, tensor *dx);
void cpu_concat_channels(const tensor *a, const tensor *b, tensor *y);
void cpu_split_channels(const tensor *dy, tensor *da, tensor *db);
void cpu_add(const tensor *a, const tensor *b, tensor *y);
void cpu_global_maxpool_forward(const tensor *x, tensor *y);
void cpu_global_maxpool_backward(const tensor *x, const tensor *dy, tensor *dx);
void cpu_broadcast_plane(const tensor *x, tensor *y);
void cpu_sum_plane(const tensor *dy, tensor *dx);
void cpu_mul(const tensor *a, const tensor *b, tensor *y);
void cpu_sigmoid_forward(const tensor *x, tensor *y);
void cpu_sigmoid_backward(const tensor *y, const tensor *dy, tensor *dx);
void cpu_sigmoid_bce(const tensor *logits, const float *targets, float grad_scale, tensor *grad,
                     double *scalars);
void cpu_sigmoid_smooth_l1(const tensor *x, const float *targets, const float *mask,
                           float grad_scale, const float *grad_factor, tensor *grad,
                           double *scalars);

void cpu_softmax_cross_entropy(const tensor *logits, const uint8_t *labels,
                               const float *class_weights, int ignore_label, float grad_scale,
                               const float *grad_factor, tensor *grad_logits, double *scalars);
void cpu_argmax_channels(const tensor *logits, uint8_t *predictions, float *confidence);
void cpu_class_statistics(uint8_t *predictions, const float *confidence, const uint8_t *photos,
                          const float *boxes, const float *linear, int batch, int height, int width,
                          int classes, uint8_t outside_label, double *sums);
void cpu_gradient_norm(const float *grads, size_t count, double clip_norm, double loss_scale,
                       double *scalars);
void cpu_adam_update(float *params, const float *grads, float *exp_avg, float *exp_avg_sq,
                     size_t count, const adam_config *cfg, const double *scalars);

#endif
