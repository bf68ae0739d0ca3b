/* CPU backend: oneDNN primitives for the layers, threaded loops for what
 * oneDNN lacks (loss, optimiser).
 *
 * Activations are stored channel-blocked (nChw8c, or nChw16c on AVX-512) when
 * the channel count allows, else plain NCHW. Every primitive is created once
 * per shape with format `any` for all its memory descriptors (creating backward
 * primitives with the forward's concrete weights format makes oneDNN fall back
 * to reference code; see shared/notes), and reorders run only where a
 * primitive's chosen format differs from the stored one. */
#include <math.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "primitive_cache.h"

#define DNNL_CHECK(call)                                                                           \
  do {                                                                                             \
    dnnl_status_t status_ = (call);                                                                \
    if (status_ != dnnl_success) FP_FATAL("oneDNN: %s failed: %s", #call, dnnl_status2str(status_)); \
  } while (0)

static struct {
  dnnl_engine_t engine;
  dnnl_stream_t stream;
  int channel_block;
  primitive_cache cache;
  int reference_primitives;
  int allow_winograd;
} cpu;

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
  OP_SOFTMAX,
};

/* ---------------------------------------------------------------- memory */

static void *cpu_alloc(size_t bytes) {
  void *p = NULL;
  size_t rounded = (bytes + 63) / 64 * 64;
  if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0)
    FP_FATAL("out of memory allocating %zu bytes", bytes);
  memset(p, 0, rounded);
  return p;
}

static void cpu_release(void *p) { free(p); }
static void cpu_fill_zero(void *p, size_t bytes) { memset(p, 0, bytes); }
static void cpu_copy(void *dst, const void *src, size_t bytes) {
  if (dst != src) memcpy(dst, src, bytes);
}

/* ------------------------------------------------------------ descriptors */

static dnnl_format_tag_t activation_tag(int channels) {
  if (channels % cpu.channel_block != 0) return dnnl_nchw;
  return cpu.channel_block == 16 ? dnnl_nChw16c : dnnl_nChw8c;
}

static dnnl_memory_desc_t md_by_tag(int ndims, const dnnl_dim_t *dims, dnnl_format_tag_t tag) {
  dnnl_memory_desc_t md;
  memset(&md, 0, sizeof md);
  /* The API takes a full dnnl_dims_t; passing a shorter array trips -Wstringop-overread. */
  dnnl_dims_t full_dims = {0};
  memcpy(full_dims, dims, (size_t)ndims * sizeof(dnnl_dim_t));
  DNNL_CHECK(dnnl_memory_desc_init_by_tag(&md, ndims, full_dims, dnnl_f32, tag));
  return md;
}

static dnnl_memory_desc_t md_4d(int n, int c, int h, int w, dnnl_format_tag_t tag) {
  dnnl_dim_t dims[4] = {n, c, h, w};
  return md_by_tag(4, dims, tag);
}

static dnnl_memory_desc_t activation_md(const tensor *t) {
  return md_4d(t->n, t->c, t->h, t->w, activation_tag(t->c));
}

static dnnl_memory_desc_t any_md(const tensor *t) {
  return md_4d(t->n, t->c, t->h, t->w, dnnl_format_tag_any);
}

static dnnl_memory_desc_t vector_md(int length) {
  dnnl_dim_t dims[1] = {length};
  return md_by_tag(1, dims, dnnl_a);
}

static dnnl_memory_desc_t query_md(const_dnnl_primitive_desc_t pd, dnnl_query_t what) {
  const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, what, 0);
  FP_CHECK(md != NULL, "oneDNN: primitive has no memory descriptor for query %d", (int)what);
  return *md;
}

/* Creates the primitive and records whether oneDNN picked reference code. */
static dnnl_primitive_t make_primitive(const void *op_desc, const_dnnl_primitive_desc_t hint,
                                       dnnl_primitive_desc_t *pd_out) {
  dnnl_primitive_desc_t pd;
  DNNL_CHECK(dnnl_primitive_desc_create(&pd, op_desc, NULL, cpu.engine, hint));
  const char *impl = NULL;
  DNNL_CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl));
  if (impl && strncmp(impl, "ref", 3) == 0) cpu.reference_primitives++;
  dnnl_primitive_t prim;
  DNNL_CHECK(dnnl_primitive_create(&prim, pd));
  if (pd_out) *pd_out = pd;
  else DNNL_CHECK(dnnl_primitive_desc_destroy(pd));
  return prim;
}

typedef struct exec_arg {
  int arg;
  const dnnl_memory_desc_t *md;
  const void *ptr;
} exec_arg;

static void execute(dnnl_primitive_t prim, int count, const exec_arg *args) {
  dnnl_exec_arg_t dnnl_args[16];
  FP_CHECK(count <= 16, "too many primitive arguments");
  for (int i = 0; i < count; i++) {
    dnnl_args[i].arg = args[i].arg;
    DNNL_CHECK(dnnl_memory_create(&dnnl_args[i].memory, args[i].md, cpu.engine, (void *)args[i].ptr));
  }
  DNNL_CHECK(dnnl_primitive_execute(prim, cpu.stream, count, dnnl_args));
  DNNL_CHECK(dnnl_stream_wait(cpu.stream));
  for (int i = 0; i < count; i++) DNNL_CHECK(dnnl_memory_destroy(dnnl_args[i].memory));
}

/* ---------------------------------------------------------------- reorder */

typedef struct reorder_key {
  int kind;
  dnnl_memory_desc_t src, dst;
} reorder_key;

static void reorder(const dnnl_memory_desc_t *src_md, const void *src,
                    const dnnl_memory_desc_t *dst_md, void *dst) {
  reorder_key key;
  memset(&key, 0, sizeof key);
  key.kind = OP_REORDER;
  key.src = *src_md;
  key.dst = *dst_md;
  dnnl_primitive_t prim = primitive_cache_find(&cpu.cache, &key, sizeof key);
  if (!prim) {
    dnnl_primitive_desc_t pd;
    DNNL_CHECK(dnnl_reorder_primitive_desc_create(&pd, src_md, cpu.engine, dst_md, cpu.engine, NULL));
    DNNL_CHECK(dnnl_primitive_create(&prim, pd));
    DNNL_CHECK(dnnl_primitive_desc_destroy(pd));
    primitive_cache_insert(&cpu.cache, &key, sizeof key, prim);
  }
  exec_arg args[2] = {{DNNL_ARG_FROM, src_md, src}, {DNNL_ARG_TO, dst_md, dst}};
  execute(prim, 2, args);
}

/* A buffer in a primitive's own format, used when it differs from the stored one. */
typedef struct staging {
  dnnl_memory_desc_t stored, wanted;
  int differs;
  void *buffer;
} staging;

static void staging_init(staging *s, dnnl_memory_desc_t stored, dnnl_memory_desc_t wanted) {
  s->stored = stored;
  s->wanted = wanted;
  s->differs = !dnnl_memory_desc_equal(&stored, &wanted);
  s->buffer = s->differs ? cpu_alloc(dnnl_memory_desc_get_size(&wanted)) : NULL;
}

/* Input: returns a pointer to the data in the wanted format. */
static const void *staging_in(staging *s, const void *stored_ptr) {
  if (!s->differs) return stored_ptr;
  reorder(&s->stored, stored_ptr, &s->wanted, s->buffer);
  return s->buffer;
}

/* Output: where the primitive should write; staging_out_done copies it back. */
static void *staging_out(staging *s, void *stored_ptr) {
  return s->differs ? s->buffer : stored_ptr;
}

static void staging_out_done(staging *s, void *stored_ptr) {
  if (s->differs) reorder(&s->wanted, s->buffer, &s->stored, stored_ptr);
}

/* --------------------------------------------------- host <-> activations */

static void cpu_tensor_from_nchw(tensor *t, const float *host) {
  dnnl_memory_desc_t plain = md_4d(t->n, t->c, t->h, t->w, dnnl_nchw);
  dnnl_memory_desc_t stored = activation_md(t);
  if (dnnl_memory_desc_equal(&plain, &stored)) cpu_copy(t->data, host, tensor_count(t) * 4);
  else reorder(&plain, host, &stored, t->data);
}

static void cpu_tensor_to_nchw(const tensor *t, float *host) {
  dnnl_memory_desc_t plain = md_4d(t->n, t->c, t->h, t->w, dnnl_nchw);
  dnnl_memory_desc_t stored = activation_md(t);
  if (dnnl_memory_desc_equal(&plain, &stored)) cpu_copy(host, t->data, tensor_count(t) * 4);
  else reorder(&stored, t->data, &plain, host);
}

/* ------------------------------------------------------------ convolution */

typedef struct conv_key {
  int kind, n, c, h, w, out_channels, kernel, stride, pad, has_bias;
} conv_key;

typedef struct conv_entry {
  dnnl_primitive_t forward, backward_data, backward_weights;
  dnnl_memory_desc_t bias_md;
  staging fwd_src, fwd_weights, fwd_dst;
  staging bwd_data_diff_dst, bwd_data_weights, bwd_data_diff_src;
  staging bwd_weights_src, bwd_weights_diff_dst, bwd_weights_diff_weights;
} conv_entry;

/* Winograd F(4x4, 3x3) (oneDNN implements it on AVX-512 only) does a 3x3 stride-1 convolution in
 * fewer multiplications: 1.2-2.2x faster than direct for our layers with at least 32 input and
 * output channels on maps of at least 16x8; slower on thin or tiny layers (results/README.md).
 * Its rounding differs from direct convolution by about 1e-5 relative. FP_CONV_ALGORITHM=direct
 * turns it off. */
static int winograd_suits(const conv_desc *d, const tensor *y) {
  return cpu.allow_winograd && d->kernel == 3 && d->stride == 1 && d->in_channels >= 32 &&
         d->out_channels >= 32 && y->h * y->w >= 128;
}

typedef struct conv_descs {
  dnnl_convolution_desc_t fwd, bwd_data, bwd_weights;
} conv_descs;

static void conv_descs_init(conv_descs *c, dnnl_alg_kind_t algorithm,
                            const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *weights,
                            const dnnl_memory_desc_t *bias, const dnnl_memory_desc_t *dst,
                            const dnnl_dim_t *strides, const dnnl_dim_t *padding) {
  DNNL_CHECK(dnnl_convolution_forward_desc_init(&c->fwd, dnnl_forward_training, algorithm, src,
                                                weights, bias, dst, strides, padding, padding));
  DNNL_CHECK(dnnl_convolution_backward_data_desc_init(&c->bwd_data, algorithm, src, weights, dst,
                                                      strides, padding, padding));
  DNNL_CHECK(dnnl_convolution_backward_weights_desc_init(
      &c->bwd_weights, algorithm, src, weights, bias, dst, strides, padding, padding));
}

static int conv_descs_implemented(const conv_descs *c) {
  const void *ops[3] = {&c->fwd, &c->bwd_data, &c->bwd_weights};
  dnnl_primitive_desc_t fwd_pd = NULL;
  int implemented = 1;
  for (int i = 0; i < 3; i++) {
    dnnl_primitive_desc_t pd;
    dnnl_status_t status = dnnl_primitive_desc_create(&pd, ops[i], NULL, cpu.engine, fwd_pd);
    if (status == dnnl_unimplemented) {
      implemented = 0;
      break;
    }
    DNNL_CHECK(status);
    if (i == 0) fwd_pd = pd;
    else DNNL_CHECK(dnnl_primitive_desc_destroy(pd));
  }
  if (fwd_pd) DNNL_CHECK(dnnl_primitive_desc_destroy(fwd_pd));
  return implemented;
}

static conv_entry *conv_lookup(const conv_desc *d, const tensor *x, int has_bias) {
  conv_key key = {OP_CONV, x->n, x->c, x->h, x->w, d->out_channels, d->kernel, d->stride, d->pad,
                  has_bias};
  conv_entry *e = primitive_cache_find(&cpu.cache, &key, sizeof key);
  if (e) return e;
  FP_CHECK(x->c == d->in_channels, "conv: input has %d channels, layer expects %d", x->c,
           d->in_channels);
  e = fp_calloc(1, sizeof *e);
  tensor y = tensor_shape(x->n, d->out_channels, conv_out_size(d, x->h), conv_out_size(d, x->w));
  dnnl_dims_t strides = {d->stride, d->stride}, padding = {d->pad, d->pad};
  dnnl_memory_desc_t src_any = any_md(x), dst_any = any_md(&y);
  dnnl_memory_desc_t weights_any =
      md_4d(d->out_channels, d->in_channels, d->kernel, d->kernel, dnnl_format_tag_any);
  dnnl_memory_desc_t weights_user =
      md_4d(d->out_channels, d->in_channels, d->kernel, d->kernel, dnnl_oihw);
  e->bias_md = vector_md(d->out_channels);
  const dnnl_memory_desc_t *bias = has_bias ? &e->bias_md : NULL;

  conv_descs descs;
  conv_descs_init(&descs, winograd_suits(d, &y) ? dnnl_convolution_winograd
                                                : dnnl_convolution_direct,
                  &src_any, &weights_any, bias, &dst_any, strides, padding);
  if (descs.fwd.alg_kind == dnnl_convolution_winograd && !conv_descs_implemented(&descs))
    conv_descs_init(&descs, dnnl_convolution_direct, &src_any, &weights_any, bias, &dst_any,
                    strides, padding);
  dnnl_primitive_desc_t fwd_pd, pd;
  e->forward = make_primitive(&descs.fwd, NULL, &fwd_pd);
  staging_init(&e->fwd_src, activation_md(x), query_md(fwd_pd, dnnl_query_src_md));
  staging_init(&e->fwd_weights, weights_user, query_md(fwd_pd, dnnl_query_weights_md));
  staging_init(&e->fwd_dst, activation_md(&y), query_md(fwd_pd, dnnl_query_dst_md));

  e->backward_data = make_primitive(&descs.bwd_data, fwd_pd, &pd);
  staging_init(&e->bwd_data_diff_dst, activation_md(&y), query_md(pd, dnnl_query_diff_dst_md));
  staging_init(&e->bwd_data_weights, weights_user, query_md(pd, dnnl_query_weights_md));
  staging_init(&e->bwd_data_diff_src, activation_md(x), query_md(pd, dnnl_query_diff_src_md));
  DNNL_CHECK(dnnl_primitive_desc_destroy(pd));

  e->backward_weights = make_primitive(&descs.bwd_weights, fwd_pd, &pd);
  staging_init(&e->bwd_weights_src, activation_md(x), query_md(pd, dnnl_query_src_md));
  staging_init(&e->bwd_weights_diff_dst, activation_md(&y), query_md(pd, dnnl_query_diff_dst_md));
  staging_init(&e->bwd_weights_diff_weights, weights_user,
               query_md(pd, dnnl_query_diff_weights_md));
  DNNL_CHECK(dnnl_primitive_desc_destroy(pd));
  DNNL_CHECK(dnnl_primitive_desc_destroy(fwd_pd));
  primitive_cache_insert(&cpu.cache, &key, sizeof key, e);
  return e;
}

static void check_conv_output(const conv_desc *d, const tensor *x, const tensor *y) {
  FP_CHECK(y->n == x->n && y->c == d->out_channels && y->h == conv_out_size(d, x->h) &&
               y->w == conv_out_size(d, x->w),
           "conv: output tensor %dx%dx%dx%d does not match the layer", y->n, y->c, y->h, y->w);
}

static void cpu_conv2d_forward(const conv_desc *d, const tensor *x, const float *weights,
                               const float *bias, tensor *y) {
  check_conv_output(d, x, y);
  conv_entry *e = conv_lookup(d, x, bias != NULL);
  exec_arg args[4] = {
      {DNNL_ARG_SRC, &e->fwd_src.wanted, staging_in(&e->fwd_src, x->data)},
      {DNNL_ARG_WEIGHTS, &e->fwd_weights.wanted, staging_in(&e->fwd_weights, weights)},
      {DNNL_ARG_DST, &e->fwd_dst.wanted, staging_out(&e->fwd_dst, y->data)},
      {DNNL_ARG_BIAS, &e->bias_md, bias},
  };
  execute(e->forward, bias ? 4 : 3, args);
  staging_out_done(&e->fwd_dst, y->data);
}

static void cpu_conv2d_backward_data(const conv_desc *d, const tensor *dy, const float *weights,
                                     tensor *dx) {
  check_conv_output(d, dx, dy);
  conv_entry *e = conv_lookup(d, dx, 0);
  exec_arg args[3] = {
      {DNNL_ARG_DIFF_DST, &e->bwd_data_diff_dst.wanted, staging_in(&e->bwd_data_diff_dst, dy->data)},
      {DNNL_ARG_WEIGHTS, &e->bwd_data_weights.wanted, staging_in(&e->bwd_data_weights, weights)},
      {DNNL_ARG_DIFF_SRC, &e->bwd_data_diff_src.wanted,
       staging_out(&e->bwd_data_diff_src, dx->data)},
  };
  execute(e->backward_data, 3, args);
  staging_out_done(&e->bwd_data_diff_src, dx->data);
}

static void cpu_conv2d_backward_weights(const conv_desc *d, const tensor *x, const tensor *dy,
                                        float *grad_weights, float *grad_bias) {
  check_conv_output(d, x, dy);
  conv_entry *e = conv_lookup(d, x, grad_bias != NULL);
  exec_arg args[4] = {
      {DNNL_ARG_SRC, &e->bwd_weights_src.wanted, staging_in(&e->bwd_weights_src, x->data)},
      {DNNL_ARG_DIFF_DST, &e->bwd_weights_diff_dst.wanted,
       staging_in(&e->bwd_weights_diff_dst, dy->data)},
      {DNNL_ARG_DIFF_WEIGHTS, &e->bwd_weights_diff_weights.wanted,
       staging_out(&e->bwd_weights_diff_weights, grad_weights)},
      {DNNL_ARG_DIFF_BIAS, &e->bias_md, grad_bias},
  };
  execute(e->backward_weights, grad_bias ? 4 : 3, args);
  staging_out_done(&e->bwd_weights_diff_weights, grad_weights);
}

/* ------------------------------------------------------------- batch norm */

typedef struct shape_key {
  int kind, n, c, h, w, extra[4];
} shape_key;

static shape_key make_shape_key(int kind, const tensor *t) {
  shape_key key;
  memset(&key, 0, sizeof key);
  key.kind = kind;
  key.n = t->n;
  key.c = t->c;
  key.h = t->h;
  key.w = t->w;
  return key;
}

typedef struct bn_entry {
  dnnl_primitive_t training, inference, backward;
  dnnl_memory_desc_t data_md, channel_md;
  float *unused_shift; /* oneDNN 2.6's backward asks for the shift, which no gradient depends on */
} bn_entry;

static bn_entry *bn_lookup(const tensor *x, float eps) {
  shape_key key = make_shape_key(OP_BN, x);
  memcpy(&key.extra[0], &eps, sizeof eps);
  bn_entry *e = primitive_cache_find(&cpu.cache, &key, sizeof key);
  if (e) return e;
  e = fp_calloc(1, sizeof *e);
  e->data_md = activation_md(x);
  e->channel_md = vector_md(x->c);
  e->unused_shift = cpu_alloc((size_t)x->c * sizeof(float));
  unsigned flags = dnnl_use_scale | dnnl_use_shift;
  dnnl_batch_normalization_desc_t desc;
  dnnl_primitive_desc_t training_pd;
  DNNL_CHECK(dnnl_batch_normalization_forward_desc_init(&desc, dnnl_forward_training, &e->data_md,
                                                        eps, flags));
  e->training = make_primitive(&desc, NULL, &training_pd);
  DNNL_CHECK(dnnl_batch_normalization_forward_desc_init(&desc, dnnl_forward_inference, &e->data_md,
                                                        eps, flags | dnnl_use_global_stats));
  e->inference = make_primitive(&desc, NULL, NULL);
  DNNL_CHECK(dnnl_batch_normalization_backward_desc_init(&desc, dnnl_backward, &e->data_md,
                                                         &e->data_md, eps, flags));
  e->backward = make_primitive(&desc, training_pd, NULL);
  DNNL_CHECK(dnnl_primitive_desc_destroy(training_pd));
  primitive_cache_insert(&cpu.cache, &key, sizeof key, e);
  return e;
}

static void cpu_batchnorm_forward_training(const tensor *x, const float *gamma, const float *beta,
                                           float eps, tensor *y, float *batch_mean,
                                           float *batch_var) {
  bn_entry *e = bn_lookup(x, eps);
  exec_arg args[6] = {
      {DNNL_ARG_SRC, &e->data_md, x->data},         {DNNL_ARG_DST, &e->data_md, y->data},
      {DNNL_ARG_SCALE, &e->channel_md, gamma},      {DNNL_ARG_SHIFT, &e->channel_md, beta},
      {DNNL_ARG_MEAN, &e->channel_md, batch_mean}, {DNNL_ARG_VARIANCE, &e->channel_md, batch_var},
  };
  execute(e->training, 6, args);
}

static void cpu_batchnorm_forward_inference(const tensor *x, const float *gamma, const float *beta,
                                            const float *running_mean, const float *running_var,
                                            float eps, tensor *y) {
  bn_entry *e = bn_lookup(x, eps);
  exec_arg args[6] = {
      {DNNL_ARG_SRC, &e->data_md, x->data},           {DNNL_ARG_DST, &e->data_md, y->data},
      {DNNL_ARG_SCALE, &e->channel_md, gamma},        {DNNL_ARG_SHIFT, &e->channel_md, beta},
      {DNNL_ARG_MEAN, &e->channel_md, running_mean}, {DNNL_ARG_VARIANCE, &e->channel_md, running_var},
  };
  execute(e->inference, 6, args);
}

static void cpu_batchnorm_backward(const tensor *x, const tensor *dy, const float *gamma,
                                   const float *batch_mean, const float *batch_var, float eps,
                                   tensor *dx, float *grad_gamma, float *grad_beta) {
  bn_entry *e = bn_lookup(x, eps);
  exec_arg args[9] = {
      {DNNL_ARG_SHIFT, &e->channel_md, e->unused_shift},
      {DNNL_ARG_SRC, &e->data_md, x->data},
      {DNNL_ARG_MEAN, &e->channel_md, batch_mean},
      {DNNL_ARG_VARIANCE, &e->channel_md, batch_var},
      {DNNL_ARG_DIFF_DST, &e->data_md, dy->data},
      {DNNL_ARG_SCALE, &e->channel_md, gamma},
      {DNNL_ARG_DIFF_SRC, &e->data_md, dx->data},
      {DNNL_ARG_DIFF_SCALE, &e->channel_md, grad_gamma},
      {DNNL_ARG_DIFF_SHIFT, &e->channel_md, grad_beta},
  };
  execute(e->backward, 9, args);
}

static void cpu_batchnorm_update_running(float *running_mean, float *running_var,
                                         const float *batch_mean, const float *batch_var,
                                         int channels, float momentum, size_t count_per_channel) {
  float unbias = count_per_channel > 1 ? (float)count_per_channel / (float)(count_per_channel - 1)
                                       : 1.0f;
  for (int c = 0; c < channels; c++) {
    running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * batch_mean[c];
    running_var[c] = (1.0f - momentum) * running_var[c] + momentum * batch_var[c] * unbias;
  }
}

/* ------------------------------------------------------------------- relu */

typedef struct pair_entry {
  dnnl_primitive_t forward, backward;
  dnnl_memory_desc_t src_md, dst_md;
  dnnl_memory_desc_t workspace_md;
  void *workspace, *scratch_dst;
} pair_entry;

static pair_entry *relu_lookup(const tensor *x) {
  shape_key key = make_shape_key(OP_RELU, x);
  pair_entry *e = primitive_cache_find(&cpu.cache, &key, sizeof key);
  if (e) return e;
  e = fp_calloc(1, sizeof *e);
  e->src_md = e->dst_md = activation_md(x);
  dnnl_eltwise_desc_t desc;
  dnnl_primitive_desc_t fwd_pd;
  DNNL_CHECK(dnnl_eltwise_forward_desc_init(&desc, dnnl_forward_training, dnnl_eltwise_relu,
                                            &e->src_md, 0.0f, 0.0f));
  e->forward = make_primitive(&desc, NULL, &fwd_pd);
  DNNL_CHECK(dnnl_eltwise_backward_desc_init(&desc, dnnl_eltwise_relu_use_dst_for_bwd, &e->src_md,
                                             &e->src_md, 0.0f, 0.0f));
  e->backward = make_primitive(&desc, fwd_pd, NULL);
  DNNL_CHECK(dnnl_primitive_desc_destroy(fwd_pd));
  primitive_cache_insert(&cpu.cache, &key, sizeof key, e);
  return e;
}

static void cpu_relu_forward(const tensor *x, tensor *y) {
  pair_entry *e = relu_lookup(x);
  exec_arg args[2] = {{DNNL_ARG_SRC, &e->src_md, x->data}, {DNNL_ARG_DST, &e->dst_md, y->data}};
  execute(e->forward, 2, args);
}

static void cpu_relu_backward(const tensor *y, const tensor *dy, tensor *dx) {
  pair_entry *e = relu_lookup(y);
  exec_arg args[3] = {{DNNL_ARG_DST, &e->dst_md, y->data},
                      {DNNL_ARG_DIFF_DST, &e->dst_md, dy->data},
                      {DNNL_ARG_DIFF_SRC, &e->src_md, dx->data}};
  execute(e->backward, 3, args);
}

/* ---------------------------------------------------------------- pooling */

static pair_entry *pool_lookup(int kind, dnnl_alg_kind_t alg, int kernel_h, int kernel_w,
                               int stride, int pad, const tensor *x, const tensor *y) {
  shape_key key = make_shape_key(kind, x);
  key.extra[0] = kernel_h;
  key.extra[1] = kernel_w;
  key.extra[2] = stride;
  key.extra[3] = pad;
  pair_entry *e = primitive_cache_find(&cpu.cache, &key, sizeof key);
  if (e) return e;
  e = fp_calloc(1, sizeof *e);
  e->src_md = activation_md(x);
  e->dst_md = activation_md(y);
  dnnl_dims_t strides = {stride, stride}, kernel = {kernel_h, kernel_w}, padding = {pad, pad};
  dnnl_pooling_desc_t desc;
  dnnl_primitive_desc_t fwd_pd;
  DNNL_CHECK(dnnl_pooling_forward_desc_init(&desc, dnnl_forward_training, alg, &e->src_md,
                                            &e->dst_md, strides, kernel, padding, padding));
  e->forward = make_primitive(&desc, NULL, &fwd_pd);
  e->workspace_md = query_md(fwd_pd, dnnl_query_workspace_md);
  size_t workspace_bytes = dnnl_memory_desc_get_size(&e->workspace_md);
  if (workspace_bytes) {
    e->workspace = cpu_alloc(workspace_bytes);
    e->scratch_dst = cpu_alloc(dnnl_memory_desc_get_size(&e->dst_md));
  }
  DNNL_CHECK(dnnl_pooling_backward_desc_init(&desc, alg, &e->src_md, &e->dst_md, strides, kernel,
                                             padding, padding));
  e->backward = make_primitive(&desc, fwd_pd, NULL);
  DNNL_CHECK(dnnl_primitive_desc_destroy(fwd_pd));
  primitive_cache_insert(&cpu.cache, &key, sizeof key, e);
  return e;
}

static void check_pool_output(const pool_desc *d, const tensor *x, const tensor *y) {
  int h = (x->h + 2 * d->pad - d->kernel) / d->stride + 1;
  int w = (x->w + 2 * d->pad - d->kernel) / d->stride + 1;
  FP_CHECK(y->n == x->n && y->c == x->c && y->h == h && y->w == w,
           "pool: output %dx%dx%dx%d does not match input %dx%dx%dx%d", y->n, y->c, y->h, y->w,
           x->n, x->c, x->h, x->w);
}

static void cpu_maxpool_forward(const pool_desc *d, const tensor *x, tensor *y) {
  check_pool_output(d, x, y);
  pair_entry *e = pool_lookup(OP_MAXPOOL, dnnl_pooling_max, d->kernel, d->kernel, d->stride, d->pad, x, y);
  exec_arg args[3] = {{DNNL_ARG_SRC, &e->src_md, x->data},
                      {DNNL_ARG_DST, &e->dst_md, y->data},
                      {DNNL_ARG_WORKSPACE, &e->workspace_md, e->workspace}};
  execute(e->forward, 3, args);
}

/* The argmax workspace is recomputed here: one cheap max pool per model keeps
 * the op table free of per-call-site state. */
static void cpu_maxpool_backward(const pool_desc *d, const tensor *x, const tensor *dy,
                                 tensor *dx) {
  check_pool_output(d, x, dy);
  pair_entry *e = pool_lookup(OP_MAXPOOL, dnnl_pooling_max, d->kernel, d->kernel, d->stride, d->pad, x, dy);
  exec_arg fwd_args[3] = {{DNNL_ARG_SRC, &e->src_md, x->data},
                          {DNNL_ARG_DST, &e->dst_md, e->scratch_dst},
                          {DNNL_ARG_WORKSPACE, &e->workspace_md, e->workspace}};
  execute(e->forward, 3, fwd_args);
  exec_arg args[3] = {{DNNL_ARG_DIFF_DST, &e->dst_md, dy->data},
                      {DNNL_ARG_DIFF_SRC, &e->src_md, dx->data},
                      {DNNL_ARG_WORKSPACE, &e->workspace_md, e->workspace}};
  execute(e->backward, 3, args);
}

static void cpu_global_avgpool_forward(const tensor *x, tensor *y) {
  FP_CHECK(y->n == x->n && y->c == x->c && y->h == 1 && y->w == 1, "global pool: bad output");
  pair_entry *e =
      pool_lookup(OP_AVGPOOL, dnnl_pooling_avg_exclude_padding, x->h, x->w, 1, 0, x, y);
  exec_arg args[2] = {{DNNL_ARG_SRC, &e->src_md, x->data}, {DNNL_ARG_DST, &e->dst_md, y->data}};
  execute(e->forward, 2, args);
}

static void cpu_global_avgpool_backward(const tensor *dy, tensor *dx) {
  pair_entry *e =
      pool_lookup(OP_AVGPOOL, dnnl_pooling_avg_exclude_padding, dx->h, dx->w, 1, 0, dx, dy);
  exec_arg args[2] = {{DNNL_ARG_DIFF_DST, &e->dst_md, dy->data},
                      {DNNL_ARG_DIFF_SRC, &e->src_md, dx->data}};
  execute(e->backward, 2, args);
}

/* -------------------------------------------------------------- upsample */

static pair_entry *upsample_lookup(const tensor *x) {
  shape_key key = make_shape_key(OP_UPSAMPLE, x);
  pair_entry *e = primitive_cache_find(&cpu.cache, &key, sizeof key);
  if (e) return e;
  e = fp_calloc(1, sizeof *e);
  tensor y = tensor_shape(x->n, x->c, 2 * x->h, 2 * x->w);
  e->src_md = activation_md(x);
  e->dst_md = activation_md(&y);
  dnnl_resampling_desc_t desc;
  dnnl_primitive_desc_t fwd_pd;
  DNNL_CHECK(dnnl_resampling_forward_desc_init(&desc, dnnl_forward_training,
                                               dnnl_resampling_nearest, NULL, &e->src_md,
                                               &e->dst_md));
  e->forward = make_primitive(&desc, NULL, &fwd_pd);
  DNNL_CHECK(dnnl_resampling_backward_desc_init(&desc, dnnl_resampling_nearest, NULL, &e->src_md,
                                                &e->dst_md));
  e->backward = make_primitive(&desc, fwd_pd, NULL);
  DNNL_CHECK(dnnl_primitive_desc_destroy(fwd_pd));
  primitive_cache_insert(&cpu.cache, &key, sizeof key, e);
  return e;
}

static void cpu_upsample2x_forward(const tensor *x, tensor *y) {
  FP_CHECK(y->n == x->n && y->c == x->c && y->h == 2 * x->h && y->w == 2 * x->w,
           "upsample: output is not twice the input");
  pair_entry *e = upsample_lookup(x);
  exec_arg args[2] = {{DNNL_ARG_SRC, &e->src_md, x->data}, {DNNL_ARG_DST, &e->dst_md, y->data}};
  execute(e->forward, 2, args);
}

static void cpu_upsample2x_backward(const tensor *dy, tensor *dx) {
  FP_CHECK(dy->n == dx->n && dy->c == dx->c && dy->h == 2 * dx->h && dy->w == 2 * dx->w,
           "upsample: gradient is not twice the input");
  pair_entry *e = upsample_lookup(dx);
  exec_arg args[2] = {{DNNL_ARG_DIFF_DST, &e->dst_md, dy->data},
                      {DNNL_ARG_DIFF_SRC, &e->src_md, dx->data}};
  execute(e->backward, 2, args);
}

/* ---------------------------------------------------------- concat / add */

typedef struct concat_entry {
  dnnl_primitive_t concat;
  dnnl_memory_desc_t src_md[2], dst_md, part_md[2];
} concat_entry;

static concat_entry *concat_lookup(const tensor *a, const tensor *b) {
  shape_key key = make_shape_key(OP_CONCAT, a);
  key.extra[0] = b->c;
  concat_entry *e = primitive_cache_find(&cpu.cache, &key, sizeof key);
  if (e) return e;
  e = fp_calloc(1, sizeof *e);
  tensor y = tensor_shape(a->n, a->c + b->c, a->h, a->w);
  e->src_md[0] = activation_md(a);
  e->src_md[1] = activation_md(b);
  e->dst_md = activation_md(&y);
  dnnl_primitive_desc_t pd;
  DNNL_CHECK(dnnl_concat_primitive_desc_create(&pd, &e->dst_md, 2, 1, e->src_md, NULL, cpu.engine));
  DNNL_CHECK(dnnl_primitive_create(&e->concat, pd));
  DNNL_CHECK(dnnl_primitive_desc_destroy(pd));
  dnnl_dims_t dims_a = {a->n, a->c, a->h, a->w}, offset_a = {0, 0, 0, 0};
  dnnl_dims_t dims_b = {b->n, b->c, b->h, b->w}, offset_b = {0, a->c, 0, 0};
  DNNL_CHECK(dnnl_memory_desc_init_submemory(&e->part_md[0], &e->dst_md, dims_a, offset_a));
  DNNL_CHECK(dnnl_memory_desc_init_submemory(&e->part_md[1], &e->dst_md, dims_b, offset_b));
  primitive_cache_insert(&cpu.cache, &key, sizeof key, e);
  return e;
}

static void check_concat_shapes(const tensor *a, const tensor *b, const tensor *y) {
  FP_CHECK(a->n == b->n && a->h == b->h && a->w == b->w && y->n == a->n && y->h == a->h &&
               y->w == a->w && y->c == a->c + b->c,
           "concat: shapes %dx%dx%dx%d + %dx%dx%dx%d -> %dx%dx%dx%d do not fit", a->n, a->c, a->h,
           a->w, b->n, b->c, b->h, b->w, y->n, y->c, y->h, y->w);
}

static void cpu_concat_channels(const tensor *a, const tensor *b, tensor *y) {
  check_concat_shapes(a, b, y);
  concat_entry *e = concat_lookup(a, b);
  exec_arg args[3] = {{DNNL_ARG_MULTIPLE_SRC + 0, &e->src_md[0], a->data},
                      {DNNL_ARG_MULTIPLE_SRC + 1, &e->src_md[1], b->data},
                      {DNNL_ARG_DST, &e->dst_md, y->data}};
  execute(e->concat, 3, args);
}

static void cpu_split_channels(const tensor *dy, tensor *da, tensor *db) {
  check_concat_shapes(da, db, dy);
  concat_entry *e = concat_lookup(da, db);
  reorder(&e->part_md[0], dy->data, &e->src_md[0], da->data);
  reorder(&e->part_md[1], dy->data, &e->src_md[1], db->data);
}

static void cpu_add(const tensor *a, const tensor *b, tensor *y) {
  FP_CHECK(a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w && y->n == a->n &&
               y->c == a->c && y->h == a->h && y->w == a->w,
           "add: shapes differ");
  shape_key key = make_shape_key(OP_ADD, a);
  dnnl_primitive_t prim = primitive_cache_find(&cpu.cache, &key, sizeof key);
  dnnl_memory_desc_t md = activation_md(a);
  if (!prim) {
    dnnl_binary_desc_t desc;
    DNNL_CHECK(dnnl_binary_desc_init(&desc, dnnl_binary_add, &md, &md, &md));
    prim = make_primitive(&desc, NULL, NULL);
    primitive_cache_insert(&cpu.cache, &key, sizeof key, prim);
  }
  exec_arg args[3] = {
      {DNNL_ARG_SRC_0, &md, a->data}, {DNNL_ARG_SRC_1, &md, b->data}, {DNNL_ARG_DST, &md, y->data}};
  execute(prim, 3, args);
}

/* --------------------------------------------------------- inner product */

typedef struct ip_entry {
  dnnl_primitive_t forward, backward_data, backward_weights;
  dnnl_memory_desc_t src_md, dst_md, bias_md;
  staging fwd_weights, bwd_data_weights, bwd_diff_weights;
} ip_entry;

/* Samples are flattened in NCHW order, like PyTorch's x.flatten(1) for NCHW
 * input, so the weights are [out, C, H, W] = [out, in] row-major. */
static ip_entry *ip_lookup(const tensor *x, int out_features) {
  shape_key key = make_shape_key(OP_INNER_PRODUCT, x);
  key.extra[0] = out_features;
  ip_entry *e = primitive_cache_find(&cpu.cache, &key, sizeof key);
  if (e) return e;
  e = fp_calloc(1, sizeof *e);
  e->src_md = activation_md(x);
  /* [N,out,1,1] has the same bytes in nChw8c, nChw16c, nchw and nc */
  dnnl_dim_t dst_dims[2] = {x->n, out_features};
  e->dst_md = md_by_tag(2, dst_dims, dnnl_nc);
  e->bias_md = vector_md(out_features);
  dnnl_memory_desc_t weights_user = md_4d(out_features, x->c, x->h, x->w, dnnl_oihw);
  dnnl_memory_desc_t weights_any = md_4d(out_features, x->c, x->h, x->w, dnnl_format_tag_any);
  dnnl_inner_product_desc_t desc;
  dnnl_primitive_desc_t fwd_pd, pd;
  DNNL_CHECK(dnnl_inner_product_forward_desc_init(&desc, dnnl_forward_training, &e->src_md,
                                                  &weights_any, &e->bias_md, &e->dst_md));
  e->forward = make_primitive(&desc, NULL, &fwd_pd);
  staging_init(&e->fwd_weights, weights_user, query_md(fwd_pd, dnnl_query_weights_md));
  DNNL_CHECK(
      dnnl_inner_product_backward_data_desc_init(&desc, &e->src_md, &weights_any, &e->dst_md));
  e->backward_data = make_primitive(&desc, fwd_pd, &pd);
  staging_init(&e->bwd_data_weights, weights_user, query_md(pd, dnnl_query_weights_md));
  DNNL_CHECK(dnnl_primitive_desc_destroy(pd));
  DNNL_CHECK(dnnl_inner_product_backward_weights_desc_init(&desc, &e->src_md, &weights_any,
                                                           &e->bias_md, &e->dst_md));
  e->backward_weights = make_primitive(&desc, fwd_pd, &pd);
  staging_init(&e->bwd_diff_weights, weights_user, query_md(pd, dnnl_query_diff_weights_md));
  DNNL_CHECK(dnnl_primitive_desc_destroy(pd));
  DNNL_CHECK(dnnl_primitive_desc_destroy(fwd_pd));
  primitive_cache_insert(&cpu.cache, &key, sizeof key, e);
  return e;
}

static void cpu_inner_product_forward(const tensor *x, const float *weights, const float *bias,
                                      tensor *y) {
  FP_CHECK(y->n == x->n && y->h == 1 && y->w == 1, "inner product: output must be [N,out,1,1]");
  ip_entry *e = ip_lookup(x, y->c);
  exec_arg args[4] = {{DNNL_ARG_SRC, &e->src_md, x->data},
                      {DNNL_ARG_WEIGHTS, &e->fwd_weights.wanted, staging_in(&e->fwd_weights, weights)},
                      {DNNL_ARG_BIAS, &e->bias_md, bias},
                      {DNNL_ARG_DST, &e->dst_md, y->data}};
  execute(e->forward, 4, args);
}

static void cpu_inner_product_backward(const tensor *x, const tensor *dy, const float *weights,
                                       tensor *dx, float *grad_weights, float *grad_bias) {
  ip_entry *e = ip_lookup(x, dy->c);
  if (dx) {
    exec_arg args[3] = {{DNNL_ARG_DIFF_DST, &e->dst_md, dy->data},
                        {DNNL_ARG_WEIGHTS, &e->bwd_data_weights.wanted,
                         staging_in(&e->bwd_data_weights, weights)},
                        {DNNL_ARG_DIFF_SRC, &e->src_md, dx->data}};
    execute(e->backward_data, 3, args);
  }
  exec_arg args[4] = {{DNNL_ARG_SRC, &e->src_md, x->data},
                      {DNNL_ARG_DIFF_DST, &e->dst_md, dy->data},
                      {DNNL_ARG_DIFF_WEIGHTS, &e->bwd_diff_weights.wanted,
                       staging_out(&e->bwd_diff_weights, grad_weights)},
                      {DNNL_ARG_DIFF_BIAS, &e->bias_md, grad_bias}};
  execute(e->backward_weights, 4, args);
  staging_out_done(&e->bwd_diff_weights, grad_weights);
}

static void cpu_scale(float *x, size_t count, float factor);

/* ------------------------------------------------------------------- loss */

/* Logits arrive in the stored layout; loss kernels read plain NCHW. */
static const float *logits_as_nchw(const tensor *logits, float **scratch) {
  dnnl_memory_desc_t plain = md_4d(logits->n, logits->c, logits->h, logits->w, dnnl_nchw);
  dnnl_memory_desc_t stored = activation_md(logits);
  if (dnnl_memory_desc_equal(&plain, &stored)) return logits->data;
  *scratch = cpu_alloc(tensor_count(logits) * sizeof(float));
  reorder(&stored, logits->data, &plain, *scratch);
  return *scratch;
}

enum { LOSS_TILE = 64 };

/* One tile of up to LOSS_TILE neighbouring pixels of one image, so that every
 * inner loop runs over contiguous pixels and vectorises. grad (may be NULL)
 * receives weight * (softmax - onehot), unnormalised. */
static void loss_tile(const float *x, const uint8_t *labels, size_t plane, int classes,
                      int count, const float *class_weights, int ignore_label, float *grad,
                      double *weighted_nll, double *weight_sum) {
  float max_logit[LOSS_TILE], sum[LOSS_TILE], weight[LOSS_TILE];
  for (int i = 0; i < count; i++) max_logit[i] = x[i];
  for (int k = 1; k < classes; k++)
    for (int i = 0; i < count; i++) max_logit[i] = fmaxf(max_logit[i], x[k * plane + i]);
  for (int i = 0; i < count; i++) sum[i] = 0.0f;
  for (int k = 0; k < classes; k++)
    for (int i = 0; i < count; i++) sum[i] += expf(x[k * plane + i] - max_logit[i]);
  for (int i = 0; i < count; i++) {
    int label = labels[i];
    weight[i] = label == ignore_label ? 0.0f : class_weights[label];
    if (label == ignore_label) continue;
    float nll = logf(sum[i]) - (x[label * plane + i] - max_logit[i]);
    *weighted_nll += (double)weight[i] * nll;
    *weight_sum += weight[i];
  }
  if (!grad) return;
  for (int k = 0; k < classes; k++)
    for (int i = 0; i < count; i++)
      grad[k * plane + i] = weight[i] * (expf(x[k * plane + i] - max_logit[i]) / sum[i]);
  for (int i = 0; i < count; i++)
    if (labels[i] != ignore_label) grad[labels[i] * plane + i] -= weight[i];
}

static double cpu_softmax_cross_entropy(const tensor *logits, const uint8_t *labels,
                                        const float *class_weights, int ignore_label,
                                        tensor *grad_logits) {
  const int classes = logits->c;
  const size_t plane = (size_t)logits->h * logits->w;
  const size_t pixels = plane * logits->n;
  for (size_t p = 0; p < pixels; p++)
    FP_CHECK(labels[p] == ignore_label || labels[p] < classes,
             "label %d at pixel %zu is outside the %d classes", labels[p], p, classes);
  float *scratch = NULL;
  const float *x = logits_as_nchw(logits, &scratch);
  dnnl_memory_desc_t plain = md_4d(logits->n, classes, logits->h, logits->w, dnnl_nchw);
  dnnl_memory_desc_t grad_stored = plain;
  float *grad = NULL;
  if (grad_logits) {
    grad_stored = activation_md(grad_logits);
    grad = dnnl_memory_desc_equal(&plain, &grad_stored)
               ? grad_logits->data
               : cpu_alloc(tensor_count(logits) * sizeof(float));
  }
  const size_t tiles_per_image = (plane + LOSS_TILE - 1) / LOSS_TILE;
  const size_t tiles = tiles_per_image * logits->n;
  double weighted_nll = 0.0, weight_sum = 0.0;
#pragma omp parallel for reduction(+ : weighted_nll, weight_sum) schedule(static)
  for (size_t t = 0; t < tiles; t++) {
    size_t n = t / tiles_per_image, first = (t % tiles_per_image) * LOSS_TILE;
    int count = (int)(plane - first < LOSS_TILE ? plane - first : LOSS_TILE);
    size_t offset = n * classes * plane + first;
    loss_tile(x + offset, labels + n * plane + first, plane, classes, count, class_weights,
              ignore_label, grad ? grad + offset : NULL, &weighted_nll, &weight_sum);
  }
  double loss = weight_sum > 0.0 ? weighted_nll / weight_sum : 0.0;
  if (grad) {
    cpu_scale(grad, tensor_count(logits), weight_sum > 0.0 ? (float)(1.0 / weight_sum) : 0.0f);
    if (grad != grad_logits->data) {
      reorder(&plain, grad, &grad_stored, grad_logits->data);
      free(grad);
    }
  }
  free(scratch);
  return loss;
}

static void cpu_argmax_channels(const tensor *logits, uint8_t *predictions) {
  const int classes = logits->c;
  const size_t plane = (size_t)logits->h * logits->w;
  const size_t pixels = plane * logits->n;
  float *scratch = NULL;
  const float *x = logits_as_nchw(logits, &scratch);
#pragma omp parallel for schedule(static)
  for (size_t p = 0; p < pixels; p++) {
    const float *xp = x + (p / plane) * classes * plane + p % plane;
    int best = 0;
    for (int k = 1; k < classes; k++)
      if (xp[k * plane] > xp[best * plane]) best = k;
    predictions[p] = (uint8_t)best;
  }
  free(scratch);
}

/* ---------------------------------------------------------------- softmax */

typedef struct softmax_entry {
  dnnl_primitive_t forward;
  staging src, dst;
} softmax_entry;

/* oneDNN's optimised softmax wants the softmax axis innermost; over the channels of a plain or
 * channel-blocked tensor it falls back to reference code (~100x slower). So it runs on NHWC
 * copies, reordered in and out through staging buffers. */
static void cpu_softmax_channels(const tensor *logits, tensor *probabilities) {
  FP_CHECK(probabilities->n == logits->n && probabilities->c == logits->c &&
               probabilities->h == logits->h && probabilities->w == logits->w,
           "softmax: probabilities %dx%dx%dx%d do not match logits %dx%dx%dx%d", probabilities->n,
           probabilities->c, probabilities->h, probabilities->w, logits->n, logits->c, logits->h,
           logits->w);
  shape_key key = make_shape_key(OP_SOFTMAX, logits);
  softmax_entry *e = primitive_cache_find(&cpu.cache, &key, sizeof key);
  if (!e) {
    e = fp_calloc(1, sizeof *e);
    dnnl_memory_desc_t channels_last = md_4d(logits->n, logits->c, logits->h, logits->w, dnnl_nhwc);
    dnnl_softmax_desc_t desc;
    DNNL_CHECK(dnnl_softmax_forward_desc_init(&desc, dnnl_forward_inference, &channels_last, 1));
    e->forward = make_primitive(&desc, NULL, NULL);
    staging_init(&e->src, activation_md(logits), channels_last);
    staging_init(&e->dst, activation_md(probabilities), channels_last);
    primitive_cache_insert(&cpu.cache, &key, sizeof key, e);
  }
  exec_arg args[2] = {{DNNL_ARG_SRC, &e->src.wanted, staging_in(&e->src, logits->data)},
                      {DNNL_ARG_DST, &e->dst.wanted, staging_out(&e->dst, probabilities->data)}};
  execute(e->forward, 2, args);
  staging_out_done(&e->dst, probabilities->data);
}

/* -------------------------------------------------------------- optimiser */

static double cpu_sum_of_squares(const float *x, size_t count) {
  double sum = 0.0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
  for (size_t i = 0; i < count; i++) sum += (double)x[i] * x[i];
  return sum;
}

static void cpu_scale(float *x, size_t count, float factor) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < count; i++) x[i] *= factor;
}

/* Same arithmetic, in the same order, as torch.optim.Adam/AdamW (1.13). */
static void cpu_adam_update(float *params, const float *grads, float *exp_avg, float *exp_avg_sq,
                            size_t count, const adam_config *cfg, long step) {
  const float lr = cfg->lr, beta1 = cfg->beta1, beta2 = cfg->beta2, eps = cfg->eps;
  const float bias_correction1 = 1.0f - powf(beta1, (float)step);
  const float bias_correction2_sqrt = sqrtf(1.0f - powf(beta2, (float)step));
  const float step_size = lr / bias_correction1;
  const float decay = cfg->decoupled_weight_decay ? 1.0f - lr * cfg->weight_decay : 1.0f;
  const float l2 = cfg->decoupled_weight_decay ? 0.0f : cfg->weight_decay;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < count; i++) {
    float p = params[i] * decay;
    float g = grads[i] + l2 * params[i];
    float m = exp_avg[i] * beta1 + (1.0f - beta1) * g;
    float v = exp_avg_sq[i] * beta2 + (1.0f - beta2) * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    params[i] = p - step_size * (m / (sqrtf(v) / bias_correction2_sqrt + eps));
  }
}

static int cpu_reference_primitive_count(void) { return cpu.reference_primitives; }

/* ------------------------------------------------------------------ table */

const backend *backend_cpu(void) {
  static backend table;
  if (!cpu.engine) {
    DNNL_CHECK(dnnl_engine_create(&cpu.engine, dnnl_cpu, 0));
    DNNL_CHECK(dnnl_stream_create(&cpu.stream, cpu.engine, dnnl_stream_default_flags));
    cpu.channel_block = dnnl_get_effective_cpu_isa() >= dnnl_cpu_isa_avx512_core ? 16 : 8;
    const char *algorithm = getenv("FP_CONV_ALGORITHM");
    FP_CHECK(!algorithm || !strcmp(algorithm, "auto") || !strcmp(algorithm, "direct"),
             "FP_CONV_ALGORITHM must be auto or direct, not '%s'", algorithm);
    cpu.allow_winograd = !algorithm || !strcmp(algorithm, "auto");
    primitive_cache_init(&cpu.cache);
    table = (backend){
        .name = "cpu-onednn",
        .alloc = cpu_alloc,
        .release = cpu_release,
        .fill_zero = cpu_fill_zero,
        .copy_from_host = cpu_copy,
        .copy_to_host = cpu_copy,
        .copy = cpu_copy,
        .tensor_from_nchw = cpu_tensor_from_nchw,
        .tensor_to_nchw = cpu_tensor_to_nchw,
        .conv2d_forward = cpu_conv2d_forward,
        .conv2d_backward_data = cpu_conv2d_backward_data,
        .conv2d_backward_weights = cpu_conv2d_backward_weights,
        .batchnorm_forward_training = cpu_batchnorm_forward_training,
        .batchnorm_forward_inference = cpu_batchnorm_forward_inference,
        .batchnorm_backward = cpu_batchnorm_backward,
        .batchnorm_update_running = cpu_batchnorm_update_running,
        .relu_forward = cpu_relu_forward,
        .relu_backward = cpu_relu_backward,
        .maxpool_forward = cpu_maxpool_forward,
        .maxpool_backward = cpu_maxpool_backward,
        .upsample2x_forward = cpu_upsample2x_forward,
        .upsample2x_backward = cpu_upsample2x_backward,
        .concat_channels = cpu_concat_channels,
        .split_channels = cpu_split_channels,
        .add = cpu_add,
        .global_avgpool_forward = cpu_global_avgpool_forward,
        .global_avgpool_backward = cpu_global_avgpool_backward,
        .inner_product_forward = cpu_inner_product_forward,
        .inner_product_backward = cpu_inner_product_backward,
        .softmax_cross_entropy = cpu_softmax_cross_entropy,
        .argmax_channels = cpu_argmax_channels,
        .softmax_channels = cpu_softmax_channels,
        .sum_of_squares = cpu_sum_of_squares,
        .scale = cpu_scale,
        .adam_update = cpu_adam_update,
        .reference_primitive_count = cpu_reference_primitive_count,
    };
  }
  return &table;
}
