/* CPU backend: convolution and inner product (oneDNN), in f32 or bf16. Weight gradients are f32
 * whatever the activations are. */
#include "cpu_internal.h"

typedef struct conv_key {
  int kind, dtype, n, c, h, w, out_channels, kernel, stride, pad, has_bias;
} conv_key;

typedef struct conv_entry {
  dnnl_primitive_t forward, backward_data, backward_weights;
  dnnl_memory_desc_t bias_md;
  staging fwd_src, fwd_weights, fwd_dst;
  staging bwd_data_diff_dst, bwd_data_weights, bwd_data_diff_src;
  staging bwd_weights_src, bwd_weights_diff_dst, bwd_weights_diff_weights;
} conv_entry;

/* Winograd F(4x4, 3x3) (oneDNN implements it on AVX-512, f32 only) does a 3x3 stride-1
 * convolution in fewer multiplications: 1.2-2.2x faster than direct for our layers with at
 * least 32 input and output channels on maps of at least 16x8; slower on thin or tiny layers
 * (results/README.md). Its rounding differs from direct convolution by about 1e-5 relative.
 * FP_CONV_ALGORITHM=direct turns it off. */
static int winograd_suits(const conv_desc *d, const tensor *y) {
  return cpu.allow_winograd && y->dtype == FP_F32 && d->kernel == 3 && d->stride == 1 &&
         d->in_channels >= 32 && d->out_channels >= 32 && y->h * y->w >= 128;
}

typedef struct conv_descs {
  dnnl_convolution_desc_t fwd, bwd_data, bwd_weights;
} conv_descs;

/* weights: in the activations' type (forward, backward data); diff_weights: f32 */
static void conv_descs_init(conv_descs *c, dnnl_alg_kind_t algorithm, const dnnl_memory_desc_t *src,
                            const dnnl_memory_desc_t *weights,
                            const dnnl_memory_desc_t *diff_weights, const dnnl_memory_desc_t *bias,
                            const dnnl_memory_desc_t *dst, const dnnl_dim_t *strides,
                            const dnnl_dim_t *padding) {
  DNNL_CHECK(dnnl_convolution_forward_desc_init(&c->fwd, dnnl_forward_training, algorithm, src,
                                                weights, bias, dst, strides, padding, padding));
  DNNL_CHECK(dnnl_convolution_backward_data_desc_init(&c->bwd_data, algorithm, src, weights, dst,
                                                      strides, padding, padding));
  DNNL_CHECK(dnnl_convolution_backward_weights_desc_init(
      &c->bwd_weights, algorithm, src, diff_weights, bias, dst, strides, padding, padding));
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
    if (i == 0)
      fwd_pd = pd;
    else
      DNNL_CHECK(dnnl_primitive_desc_destroy(pd));
  }
  if (fwd_pd) DNNL_CHECK(dnnl_primitive_desc_destroy(fwd_pd));
  return implemented;
}

static void conv_entry_create(conv_entry *e, const conv_desc *d, const tensor *x, const tensor *y,
                              int has_bias) {
  dnnl_dims_t strides = {d->stride, d->stride}, padding = {d->pad, d->pad};
  dnnl_memory_desc_t src_any = any_md(x), dst_any = any_md(y);
  int o = d->out_channels, i = d->in_channels, k = d->kernel;
  dnnl_memory_desc_t weights_any = md_4d(x->dtype, o, i, k, k, dnnl_format_tag_any);
  dnnl_memory_desc_t weights_user = md_4d(x->dtype, o, i, k, k, dnnl_oihw);
  dnnl_memory_desc_t diff_weights_any = md_4d(FP_F32, o, i, k, k, dnnl_format_tag_any);
  dnnl_memory_desc_t diff_weights_user = md_4d(FP_F32, o, i, k, k, dnnl_oihw);
  e->bias_md = vector_md(o);
  const dnnl_memory_desc_t *bias = has_bias ? &e->bias_md : NULL;

  conv_descs descs;
  dnnl_alg_kind_t algorithm =
      winograd_suits(d, y) ? dnnl_convolution_winograd : dnnl_convolution_direct;
  conv_descs_init(&descs, algorithm, &src_any, &weights_any, &diff_weights_any, bias, &dst_any,
                  strides, padding);
  if (algorithm == dnnl_convolution_winograd && !conv_descs_implemented(&descs))
    conv_descs_init(&descs, dnnl_convolution_direct, &src_any, &weights_any, &diff_weights_any,
                    bias, &dst_any, strides, padding);
  dnnl_primitive_desc_t fwd_pd, pd;
  e->forward = make_primitive(&descs.fwd, NULL, &fwd_pd);
  staging_init(&e->fwd_src, activation_md(x), query_md(fwd_pd, dnnl_query_src_md));
  staging_init(&e->fwd_weights, weights_user, query_md(fwd_pd, dnnl_query_weights_md));
  staging_init(&e->fwd_dst, activation_md(y), query_md(fwd_pd, dnnl_query_dst_md));

  e->backward_data = make_primitive(&descs.bwd_data, fwd_pd, &pd);
  staging_init(&e->bwd_data_diff_dst, activation_md(y), query_md(pd, dnnl_query_diff_dst_md));
  staging_init(&e->bwd_data_weights, weights_user, query_md(pd, dnnl_query_weights_md));
  staging_init(&e->bwd_data_diff_src, activation_md(x), query_md(pd, dnnl_query_diff_src_md));
  DNNL_CHECK(dnnl_primitive_desc_destroy(pd));

  e->backward_weights = make_primitive(&descs.bwd_weights, fwd_pd, &pd);
  staging_init(&e->bwd_weights_src, activation_md(x), query_md(pd, dnnl_query_src_md));
  staging_init(&e->bwd_weights_diff_dst, activation_md(y), query_md(pd, dnnl_query_diff_dst_md));
  staging_init(&e->bwd_weights_diff_weights, diff_weights_user,
               query_md(pd, dnnl_query_diff_weights_md));
  DNNL_CHECK(dnnl_primitive_desc_destroy(pd));
  DNNL_CHECK(dnnl_primitive_desc_destroy(fwd_pd));
}

static void check_conv_shapes(const conv_desc *d, const tensor *x, const tensor *y) {
  FP_CHECK(x->c == d->in_channels, "conv: input has %d channels, layer expects %d", x->c,
           d->in_channels);
  FP_CHECK(y->n == x->n && y->c == d->out_channels && y->h == conv_out_size(d, x->h) &&
               y->w == conv_out_size(d, x->w),
           "conv: output tensor %dx%dx%dx%d does not match the layer", y->n, y->c, y->h, y->w);
  FP_CHECK(x->dtype == y->dtype, "conv: input is %s but output is %s", fp_dtype_name(x->dtype),
           fp_dtype_name(y->dtype));
}

static conv_entry *conv_lookup(const conv_desc *d, const tensor *x, const tensor *y, int has_bias) {
  check_conv_shapes(d, x, y);
  conv_key key = {OP_CONV,         (int)x->dtype, x->n,      x->c,   x->h,    x->w,
                  d->out_channels, d->kernel,     d->stride, d->pad, has_bias};
  conv_entry *e = primitive_cache_find(&cpu.cache, &key, sizeof key);
  if (e) return e;
  e = fp_calloc(1, sizeof *e);
  conv_entry_create(e, d, x, y, has_bias);
  primitive_cache_insert(&cpu.cache, &key, sizeof key, e);
  return e;
}

void cpu_conv2d_forward(const conv_desc *d, const tensor *x, const void *weights, const float *bias,
                        tensor *y) {
  conv_entry *e = conv_lookup(d, x, y, bias != NULL);
  exec_arg args[4] = {
      {DNNL_ARG_SRC, &e->fwd_src.wanted, staging_in(&e->fwd_src, x->data)},
      {DNNL_ARG_WEIGHTS, &e->fwd_weights.wanted, staging_in(&e->fwd_weights, weights)},
      {DNNL_ARG_DST, &e->fwd_dst.wanted, staging_out(&e->fwd_dst, y->data)},
      {DNNL_ARG_BIAS, &e->bias_md, bias},
  };
  execute(e->forward, bias ? 4 : 3, args);
  staging_out_done(&e->fwd_dst, y->data);
}

void cpu_conv2d_backward_data(const conv_desc *d, const tensor *dy, const void *weights,
                              tensor *dx) {
  conv_entry *e = conv_lookup(d, dx, dy, 0);
  exec_arg args[3] = {
      {DNNL_ARG_DIFF_DST, &e->bwd_data_diff_dst.wanted,
       staging_in(&e->bwd_data_diff_dst, dy->data)},
      {DNNL_ARG_WEIGHTS, &e->bwd_data_weights.wanted, staging_in(&e->bwd_data_weights, weights)},
      {DNNL_ARG_DIFF_SRC, &e->bwd_data_diff_src.wanted,
       staging_out(&e->bwd_data_diff_src, dx->data)},
  };
  execute(e->backward_data, 3, args);
  staging_out_done(&e->bwd_data_diff_src, dx->data);
}

void cpu_conv2d_backward_weights(const conv_desc *d, const tensor *x, const tensor *dy,
                                 float *grad_weights, float *grad_bias) {
  conv_entry *e = conv_lookup(d, x, dy, grad_bias != NULL);
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

/* ------------------------------------------------ convolution + epilogue */

/* The epilogue as oneDNN post-ops: a sum (the residual, which oneDNN adds from the destination's
 * contents before the call), then an eltwise ReLU. */
typedef struct fused_conv_key {
  int kind, dtype, n, c, h, w, out_channels, kernel, stride, pad, has_bias, residual, relu;
} fused_conv_key;

typedef struct fused_conv_entry {
  dnnl_primitive_t forward;
  dnnl_memory_desc_t bias_md;
  staging src, weights, dst;
} fused_conv_entry;

static dnnl_primitive_attr_t epilogue_attr(int residual, int relu) {
  dnnl_post_ops_t post_ops;
  DNNL_CHECK(dnnl_post_ops_create(&post_ops));
  if (residual) DNNL_CHECK(dnnl_post_ops_append_sum(post_ops, 1.0f));
  if (relu) DNNL_CHECK(dnnl_post_ops_append_eltwise(post_ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f));
  dnnl_primitive_attr_t attr;
  DNNL_CHECK(dnnl_primitive_attr_create(&attr));
  DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, post_ops));
  DNNL_CHECK(dnnl_post_ops_destroy(post_ops));
  return attr;
}

static void fused_conv_create(fused_conv_entry *e, const conv_desc *d, const tensor *x,
                              const tensor *y, const fused_conv_key *key) {
  dnnl_dims_t strides = {d->stride, d->stride}, padding = {d->pad, d->pad};
  dnnl_memory_desc_t src_any = any_md(x), dst_any = any_md(y);
  int o = d->out_channels, i = d->in_channels, k = d->kernel;
  dnnl_memory_desc_t weights_any = md_4d(x->dtype, o, i, k, k, dnnl_format_tag_any);
  e->bias_md = vector_md(o);
  const dnnl_memory_desc_t *bias = key->has_bias ? &e->bias_md : NULL;
  dnnl_primitive_attr_t attr = epilogue_attr(key->residual, key->relu);
  dnnl_convolution_desc_t desc;
  DNNL_CHECK(dnnl_convolution_forward_desc_init(
      &desc, dnnl_forward_training,
      winograd_suits(d, y) ? dnnl_convolution_winograd : dnnl_convolution_direct, &src_any,
      &weights_any, bias, &dst_any, strides, padding, padding));
  dnnl_primitive_desc_t probe;
  dnnl_status_t status = dnnl_primitive_desc_create(&probe, &desc, attr, cpu.engine, NULL);
  if (status == dnnl_unimplemented) /* Winograd without these post-ops */
    DNNL_CHECK(dnnl_convolution_forward_desc_init(&desc, dnnl_forward_training,
                                                  dnnl_convolution_direct, &src_any, &weights_any,
                                                  bias, &dst_any, strides, padding, padding));
  else
    DNNL_CHECK(status == dnnl_success ? dnnl_primitive_desc_destroy(probe) : status);
  dnnl_primitive_desc_t pd;
  e->forward = make_primitive_with_attr(&desc, attr, NULL, &pd);
  DNNL_CHECK(dnnl_primitive_attr_destroy(attr));
  staging_init(&e->src, activation_md(x), query_md(pd, dnnl_query_src_md));
  staging_init(&e->weights, md_4d(x->dtype, o, i, k, k, dnnl_oihw),
               query_md(pd, dnnl_query_weights_md));
  staging_init(&e->dst, activation_md(y), query_md(pd, dnnl_query_dst_md));
  DNNL_CHECK(dnnl_primitive_desc_destroy(pd));
}

void cpu_conv2d_forward_fused(const conv_desc *d, const tensor *x, const void *weights,
                              const float *bias, const conv_epilogue *epilogue, tensor *y) {
  check_conv_shapes(d, x, y);
  const tensor *residual = epilogue->residual;
  if (residual)
    FP_CHECK(FP_SAME_SHAPE(residual, y) && residual->dtype == y->dtype && residual->data != y->data,
             "fused conv: the residual %dx%dx%dx%d %s is not a tensor of the output's shape",
             residual->n, residual->c, residual->h, residual->w, fp_dtype_name(residual->dtype));
  fused_conv_key key = {
      OP_CONV_FUSED,      (int)x->dtype, x->n,      x->c,   x->h,         x->w,
      d->out_channels,    d->kernel,     d->stride, d->pad, bias != NULL, residual != NULL,
      epilogue->relu != 0};
  fused_conv_entry *e = primitive_cache_find(&cpu.cache, &key, sizeof key);
  if (!e) {
    e = fp_calloc(1, sizeof *e);
    fused_conv_create(e, d, x, y, &key);
    primitive_cache_insert(&cpu.cache, &key, sizeof key, e);
  }
  void *dst = staging_out(&e->dst, y->data);
  if (residual) { /* the sum post-op adds what the destination holds */
    dnnl_memory_desc_t stored = activation_md(y);
    memcpy(y->data, residual->data, dnnl_memory_desc_get_size(&stored));
    dst = (void *)staging_in(&e->dst, y->data);
  }
  exec_arg args[4] = {
      {DNNL_ARG_SRC, &e->src.wanted, staging_in(&e->src, x->data)},
      {DNNL_ARG_WEIGHTS, &e->weights.wanted, staging_in(&e->weights, weights)},
      {DNNL_ARG_DST, &e->dst.wanted, dst},
      {DNNL_ARG_BIAS, &e->bias_md, bias},
  };
  execute(e->forward, bias ? 4 : 3, args);
  staging_out_done(&e->dst, y->data);
}

/* --------------------------------------------------------- inner product */

typedef struct ip_entry {
  dnnl_primitive_t forward, backward_data, backward_weights;
  dnnl_memory_desc_t src_md, dst_md, bias_md;
  staging fwd_weights, bwd_data_weights, bwd_diff_weights;
} ip_entry;

/* Samples are flattened in NCHW order, like PyTorch's x.flatten(1) for NCHW input, so the
 * weights are [out, C, H, W] = [out, in] row-major. */
static ip_entry *ip_lookup(const tensor *x, int out_features) {
  shape_key key = make_shape_key(OP_INNER_PRODUCT, x);
  key.extra[0] = out_features;
  ip_entry *e = primitive_cache_find(&cpu.cache, &key, sizeof key);
  if (e) return e;
  e = fp_calloc(1, sizeof *e);
  e->src_md = activation_md(x);
  /* [N,out,1,1] has the same bytes in nChw8c, nChw16c, nchw and nc */
  dnnl_dim_t dst_dims[2] = {x->n, out_features};
  e->dst_md = md_by_tag(2, dst_dims, dnnl_type(x->dtype), dnnl_nc);
  e->bias_md = vector_md(out_features);
  dnnl_memory_desc_t weights_user = md_4d(x->dtype, out_features, x->c, x->h, x->w, dnnl_oihw);
  dnnl_memory_desc_t weights_any =
      md_4d(x->dtype, out_features, x->c, x->h, x->w, dnnl_format_tag_any);
  dnnl_memory_desc_t diff_weights_user = md_4d(FP_F32, out_features, x->c, x->h, x->w, dnnl_oihw);
  dnnl_memory_desc_t diff_weights_any =
      md_4d(FP_F32, out_features, x->c, x->h, x->w, dnnl_format_tag_any);
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
  DNNL_CHECK(dnnl_inner_product_backward_weights_desc_init(&desc, &e->src_md, &diff_weights_any,
                                                           &e->bias_md, &e->dst_md));
  e->backward_weights = make_primitive(&desc, fwd_pd, &pd);
  staging_init(&e->bwd_diff_weights, diff_weights_user, query_md(pd, dnnl_query_diff_weights_md));
  DNNL_CHECK(dnnl_primitive_desc_destroy(pd));
  DNNL_CHECK(dnnl_primitive_desc_destroy(fwd_pd));
  primitive_cache_insert(&cpu.cache, &key, sizeof key, e);
  return e;
}

void cpu_inner_product_forward(const tensor *x, const void *weights, const float *bias, tensor *y) {
  FP_CHECK(y->n == x->n && y->h == 1 && y->w == 1 && y->dtype == x->dtype,
           "inner product: output must be [N,out,1,1] in the input's type");
  ip_entry *e = ip_lookup(x, y->c);
  exec_arg args[4] = {
      {DNNL_ARG_SRC, &e->src_md, x->data},
      {DNNL_ARG_WEIGHTS, &e->fwd_weights.wanted, staging_in(&e->fwd_weights, weights)},
      {DNNL_ARG_BIAS, &e->bias_md, bias},
      {DNNL_ARG_DST, &e->dst_md, y->data}};
  execute(e->forward, 4, args);
}

void cpu_inner_product_backward(const tensor *x, const tensor *dy, const void *weights, tensor *dx,
                                float *grad_weights, float *grad_bias) {
  ip_entry *e = ip_lookup(x, dy->c);
  if (dx) {
    exec_arg args[3] = {
        {DNNL_ARG_DIFF_DST, &e->dst_md, dy->data},
        {DNNL_ARG_WEIGHTS, &e->bwd_data_weights.wanted, staging_in(&e->bwd_data_weights, weights)},
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
