/* CPU backend: ReLU, pooling, upsampling, concat/split and add (oneDNN), in the tensors' own
 * dtype. */
#include "cpu_internal.h"

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

void cpu_relu_forward(const tensor *x, tensor *y) {
  pair_entry *e = relu_lookup(x);
  exec_arg args[2] = {{DNNL_ARG_SRC, &e->src_md, x->data}, {DNNL_ARG_DST, &e->dst_md, y->data}};
  execute(e->forward, 2, args);
}

void cpu_relu_backward(const tensor *y, const tensor *dy, tensor *dx) {
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
    e->workspace = cpu_alloc_bytes(workspace_bytes);
    e->scratch_dst = cpu_alloc_bytes(dnnl_memory_desc_get_size(&e->dst_md));
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

void cpu_maxpool_forward(const pool_desc *d, const tensor *x, tensor *y) {
  check_pool_output(d, x, y);
  pair_entry *e =
      pool_lookup(OP_MAXPOOL, dnnl_pooling_max, d->kernel, d->kernel, d->stride, d->pad, x, y);
  exec_arg args[3] = {{DNNL_ARG_SRC, &e->src_md, x->data},
                      {DNNL_ARG_DST, &e->dst_md, y->data},
                      {DNNL_ARG_WORKSPACE, &e->workspace_md, e->workspace}};
  execute(e->forward, 3, args);
}

/* The argmax workspace is recomputed here: one cheap max pool per model keeps
 * the op table free of per-call-site state. */
void cpu_maxpool_backward(const pool_desc *d, const tensor *x, const tensor *dy, tensor *dx) {
  check_pool_output(d, x, dy);
  pair_entry *e =
      pool_lookup(OP_MAXPOOL, dnnl_pooling_max, d->kernel, d->kernel, d->stride, d->pad, x, dy);
  exec_arg fwd_args[3] = {{DNNL_ARG_SRC, &e->src_md, x->data},
                          {DNNL_ARG_DST, &e->dst_md, e->scratch_dst},
                          {DNNL_ARG_WORKSPACE, &e->workspace_md, e->workspace}};
  execute(e->forward, 3, fwd_args);
  exec_arg args[3] = {{DNNL_ARG_DIFF_DST, &e->dst_md, dy->data},
                      {DNNL_ARG_DIFF_SRC, &e->src_md, dx->data},
                      {DNNL_ARG_WORKSPACE, &e->workspace_md, e->workspace}};
  execute(e->backward, 3, args);
}

void cpu_global_avgpool_forward(const tensor *x, tensor *y) {
  FP_CHECK(y->n == x->n && y->c == x->c && y->h == 1 && y->w == 1, "global pool: bad output");
  pair_entry *e = pool_lookup(OP_AVGPOOL, dnnl_pooling_avg_exclude_padding, x->h, x->w, 1, 0, x, y);
  exec_arg args[2] = {{DNNL_ARG_SRC, &e->src_md, x->data}, {DNNL_ARG_DST, &e->dst_md, y->data}};
  execute(e->forward, 2, args);
}

void cpu_global_avgpool_backward(const tensor *dy, tensor *dx) {
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
  tensor y = tensor_shape(x->dtype, x->n, x->c, 2 * x->h, 2 * x->w);
  e->src_md = activation_md(x);
  e->dst_md = activation_md(&y);
  dnnl_resampling_desc_t desc;
  dnnl_primitive_desc_t fwd_pd;
  DNNL_CHECK(dnnl_resampling_forward_desc_init(
      &desc, dnnl_forward_training, dnnl_resampling_nearest, NULL, &e->src_md, &e->dst_md));
  e->forward = make_primitive(&desc, NULL, &fwd_pd);
  DNNL_CHECK(dnnl_resampling_backward_desc_init(&desc, dnnl_resampling_nearest, NULL, &e->src_md,
                                                &e->dst_md));
  e->backward = make_primitive(&desc, fwd_pd, NULL);
  DNNL_CHECK(dnnl_primitive_desc_destroy(fwd_pd));
  primitive_cache_insert(&cpu.cache, &key, sizeof key, e);
  return e;
}

void cpu_upsample2x_forward(const tensor *x, tensor *y) {
  FP_CHECK(y->n == x->n && y->c == x->c && y->h == 2 * x->h && y->w == 2 * x->w,
           "upsample: output is not twice the input");
  pair_entry *e = upsample_lookup(x);
  exec_arg args[2] = {{DNNL_ARG_SRC, &e->src_md, x->data}, {DNNL_ARG_DST, &e->dst_md, y->data}};
  execute(e->forward, 2, args);
}

void cpu_upsample2x_backward(const tensor *dy, tensor *dx) {
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
  tensor y = tensor_shape(a->dtype, a->n, a->c + b->c, a->h, a->w);
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
  FP_CHECK(a->dtype == b->dtype && a->dtype == y->dtype, "concat: types differ");
  FP_CHECK(a->n == b->n && a->h == b->h && a->w == b->w && y->n == a->n && y->h == a->h &&
               y->w == a->w && y->c == a->c + b->c,
           "concat: shapes %dx%dx%dx%d + %dx%dx%dx%d -> %dx%dx%dx%d do not fit", a->n, a->c, a->h,
           a->w, b->n, b->c, b->h, b->w, y->n, y->c, y->h, y->w);
}

void cpu_concat_channels(const tensor *a, const tensor *b, tensor *y) {
  check_concat_shapes(a, b, y);
  concat_entry *e = concat_lookup(a, b);
  exec_arg args[3] = {{DNNL_ARG_MULTIPLE_SRC + 0, &e->src_md[0], a->data},
                      {DNNL_ARG_MULTIPLE_SRC + 1, &e->src_md[1], b->data},
                      {DNNL_ARG_DST, &e->dst_md, y->data}};
  execute(e->concat, 3, args);
}

void cpu_split_channels(const tensor *dy, tensor *da, tensor *db) {
  check_concat_shapes(da, db, dy);
  concat_entry *e = concat_lookup(da, db);
  reorder(&e->part_md[0], dy->data, &e->src_md[0], da->data);
  reorder(&e->part_md[1], dy->data, &e->src_md[1], db->data);
}

void cpu_add(const tensor *a, const tensor *b, tensor *y) {
  FP_CHECK(FP_SAME_SHAPE(a, b) && FP_SAME_SHAPE(a, y) && a->dtype == b->dtype &&
               a->dtype == y->dtype,
           "add: shapes or types differ");
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
