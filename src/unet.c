#include "unet.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "rng.h"

static const int stage_channels[4] = {64, 128, 256, 512};
static const int decoder_channels[5] = {256, 128, 64, 32, 16};

int unet_arch_parse(const char *name, unet_arch *arch) {
  if (!strcmp(name, "r18")) *arch = UNET_R18;
  else if (!strcmp(name, "r34")) *arch = UNET_R34;
  else return -1;
  return 0;
}

const char *unet_arch_name(unet_arch arch) { return arch == UNET_R18 ? "r18" : "r34"; }

static const int *stage_block_counts(unet_arch arch) {
  static const int r18[4] = {2, 2, 2, 2}, r34[4] = {3, 4, 6, 3};
  return arch == UNET_R18 ? r18 : r34;
}

/* ----------------------------------------------------------- registration */

static size_t tensor_list_add(tensor_list *list, const char *name, int ndims, const int *dims) {
  if (list->count == list->capacity) {
    list->capacity = list->capacity ? 2 * list->capacity : 64;
    named_tensor *grown = fp_calloc((size_t)list->capacity, sizeof *grown);
    if (list->items) memcpy(grown, list->items, (size_t)list->count * sizeof *grown);
    free(list->items);
    list->items = grown;
  }
  named_tensor *t = &list->items[list->count++];
  FP_CHECK(strlen(name) < NAMED_TENSOR_NAME_MAX, "tensor name too long: %s", name);
  strcpy(t->name, name);
  t->ndims = ndims;
  t->count = 1;
  for (int i = 0; i < ndims; i++) {
    t->dims[i] = dims[i];
    t->count *= (size_t)dims[i];
  }
  t->offset = list->total;
  list->total += t->count;
  return t->offset;
}

const named_tensor *tensor_list_find(const tensor_list *list, const char *name) {
  for (int i = 0; i < list->count; i++)
    if (!strcmp(list->items[i].name, name)) return &list->items[i];
  return NULL;
}

/* out = prefix + suffix, aborting if the name does not fit */
static void name_join(char *out, const char *prefix, const char *suffix) {
  size_t a = strlen(prefix), b = strlen(suffix);
  FP_CHECK(a + b < NAMED_TENSOR_NAME_MAX, "tensor name too long: %s%s", prefix, suffix);
  memcpy(out, prefix, a);
  memcpy(out + a, suffix, b + 1);
}

static tensor make_activation(unet *m, int c, int h, int w) {
  tensor t = tensor_shape(m->batch, c, h, w);
  t.data = m->be->alloc(tensor_count(&t) * sizeof(float));
  return t;
}

static void conv_layer_init(unet *m, conv_layer *layer, const char *name, conv_desc desc,
                            int has_bias) {
  char full[NAMED_TENSOR_NAME_MAX];
  int weight_dims[4] = {desc.out_channels, desc.in_channels, desc.kernel, desc.kernel};
  layer->desc = desc;
  layer->has_bias = has_bias;
  name_join(full, name, ".weight");
  layer->weight = tensor_list_add(&m->param_list, full, 4, weight_dims);
  if (has_bias) {
    name_join(full, name, ".bias");
    layer->bias = tensor_list_add(&m->param_list, full, 1, &desc.out_channels);
  }
}

static void bn_layer_init(unet *m, bn_layer *bn, const char *name, int channels) {
  char full[NAMED_TENSOR_NAME_MAX];
  bn->channels = channels;
  name_join(full, name, ".weight");
  bn->gamma = tensor_list_add(&m->param_list, full, 1, &channels);
  name_join(full, name, ".bias");
  bn->beta = tensor_list_add(&m->param_list, full, 1, &channels);
  name_join(full, name, ".running_mean");
  bn->running_mean = tensor_list_add(&m->buffer_list, full, 1, &channels);
  name_join(full, name, ".running_var");
  bn->running_var = tensor_list_add(&m->buffer_list, full, 1, &channels);
  bn->batch_mean = m->be->alloc((size_t)channels * sizeof(float));
  bn->batch_var = m->be->alloc((size_t)channels * sizeof(float));
}

/* grad_scratch: the model's shared buffer for gradients that live only inside
 * one conv_bn_backward call. */
static void conv_bn_init(unet *m, conv_bn *u, const char *conv_name, const char *bn_name,
                         const tensor *x, int out_channels, int kernel, int stride, int relu,
                         float *grad_scratch) {
  conv_desc desc = {x->c, out_channels, kernel, stride, kernel / 2};
  conv_layer_init(m, &u->conv, conv_name, desc, 0);
  bn_layer_init(m, &u->bn, bn_name, out_channels);
  u->relu = relu;
  int h = conv_out_size(&desc, x->h), w = conv_out_size(&desc, x->w);
  u->conv_out = make_activation(m, out_channels, h, w);
  u->out = make_activation(m, out_channels, h, w);
  u->grad_conv_out = tensor_shape(m->batch, out_channels, h, w);
  u->grad_conv_out.data = grad_scratch;
}

static void basic_block_init(unet *m, basic_block *b, const char *name, const tensor *x,
                             int out_channels, int stride, float *grad_scratch) {
  char conv[NAMED_TENSOR_NAME_MAX], bn[NAMED_TENSOR_NAME_MAX];
  name_join(conv, name, ".conv1");
  name_join(bn, name, ".bn1");
  conv_bn_init(m, &b->conv1, conv, bn, x, out_channels, 3, stride, 1, grad_scratch);
  name_join(conv, name, ".conv2");
  name_join(bn, name, ".bn2");
  conv_bn_init(m, &b->conv2, conv, bn, &b->conv1.out, out_channels, 3, 1, 0, grad_scratch);
  b->has_downsample = stride != 1 || x->c != out_channels;
  if (b->has_downsample) {
    name_join(conv, name, ".downsample.0");
    name_join(bn, name, ".downsample.1");
    conv_bn_init(m, &b->downsample, conv, bn, x, out_channels, 1, stride, 0, grad_scratch);
    b->grad_identity = make_activation(m, x->c, x->h, x->w);
  }
  b->grad_mid = make_activation(m, out_channels, b->conv1.out.h, b->conv1.out.w);
  b->grad_out = make_activation(m, out_channels, b->conv2.out.h, b->conv2.out.w);
}

static void decoder_block_init(unet *m, decoder_block *d, int index, const tensor *x,
                               const tensor *skip, int out_channels, float *grad_scratch) {
  char conv[NAMED_TENSOR_NAME_MAX], bn[NAMED_TENSOR_NAME_MAX];
  d->has_skip = skip != NULL;
  d->upsampled = make_activation(m, x->c, 2 * x->h, 2 * x->w);
  d->grad_upsampled = make_activation(m, x->c, 2 * x->h, 2 * x->w);
  const tensor *conv_in = &d->upsampled;
  if (skip) {
    FP_CHECK(skip->h == 2 * x->h && skip->w == 2 * x->w, "decoder skip size mismatch");
    d->concatenated = make_activation(m, x->c + skip->c, skip->h, skip->w);
    d->grad_concatenated = make_activation(m, x->c + skip->c, skip->h, skip->w);
    conv_in = &d->concatenated;
  }
  snprintf(conv, sizeof conv, "decoder.blocks.%d.conv1.0", index);
  snprintf(bn, sizeof bn, "decoder.blocks.%d.conv1.1", index);
  conv_bn_init(m, &d->conv1, conv, bn, conv_in, out_channels, 3, 1, 1, grad_scratch);
  snprintf(conv, sizeof conv, "decoder.blocks.%d.conv2.0", index);
  snprintf(bn, sizeof bn, "decoder.blocks.%d.conv2.1", index);
  conv_bn_init(m, &d->conv2, conv, bn, &d->conv1.out, out_channels, 3, 1, 1, grad_scratch);
  d->grad_mid = make_activation(m, out_channels, d->conv1.out.h, d->conv1.out.w);
  d->grad_out = make_activation(m, out_channels, d->conv2.out.h, d->conv2.out.w);
}

/* ---------------------------------------------------------- initialisation */

static int has_prefix(const char *s, const char *prefix) {
  return !strncmp(s, prefix, strlen(prefix));
}

static int has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

/* The twin's init: encoder convs kaiming-normal (fan_out, relu), decoder convs
 * kaiming-uniform (fan_in, relu), head xavier-uniform, biases 0, BN 1/0. */
static void init_parameters(unet *m, uint64_t seed) {
  rng r;
  rng_seed(&r, seed);
  float *host = fp_calloc(m->param_list.total, sizeof(float));
  for (int i = 0; i < m->param_list.count; i++) {
    const named_tensor *t = &m->param_list.items[i];
    float *p = host + t->offset;
    if (t->ndims == 4) {
      double receptive = (double)t->dims[2] * t->dims[3];
      double fan_in = t->dims[1] * receptive, fan_out = t->dims[0] * receptive;
      if (has_prefix(t->name, "encoder.")) {
        double std = sqrt(2.0 / fan_out);
        for (size_t k = 0; k < t->count; k++) p[k] = (float)(std * rng_normal(&r));
      } else {
        double bound = has_prefix(t->name, "decoder.") ? sqrt(6.0 / fan_in)
                                                       : sqrt(6.0 / (fan_in + fan_out));
        for (size_t k = 0; k < t->count; k++) p[k] = (float)(bound * (2.0 * rng_uniform(&r) - 1.0));
      }
    } else if (has_suffix(t->name, ".weight")) {
      for (size_t k = 0; k < t->count; k++) p[k] = 1.0f;
    }
  }
  m->be->copy_from_host(m->params, host, m->param_list.total * sizeof(float));
  memset(host, 0, m->param_list.total * sizeof(float));
  for (int i = 0; i < m->buffer_list.count; i++) {
    const named_tensor *t = &m->buffer_list.items[i];
    if (has_suffix(t->name, ".running_var"))
      for (size_t k = 0; k < t->count; k++) host[t->offset + k] = 1.0f;
  }
  m->be->copy_from_host(m->buffers, host, m->buffer_list.total * sizeof(float));
  free(host);
}

/* The largest conv output: the stem's 64 channels at H/2 or the last decoder's 16 at H. */
static size_t largest_conv_output(const unet *m) {
  size_t stem = (size_t)m->batch * 64 * (m->height / 2) * (m->width / 2);
  size_t last_decoder = (size_t)m->batch * 16 * m->height * m->width;
  return stem > last_decoder ? stem : last_decoder;
}

/* Channels of the widest batch-norm layer (layer4). */
static const size_t widest_layer = 512;

unet *unet_create(const backend *be, unet_arch arch, int classes, int batch, int height, int width,
                  uint64_t seed) {
  FP_CHECK(height % 32 == 0 && width % 32 == 0 && height > 0 && width > 0,
           "model input %dx%d: height and width must be positive multiples of 32", height, width);
  FP_CHECK(classes >= 2 && classes <= 255, "model: %d classes (2..255 supported)", classes);
  FP_CHECK(batch >= 1, "model: batch %d", batch);
  unet *m = fp_calloc(1, sizeof *m);
  m->be = be;
  m->arch = arch;
  m->classes = classes;
  m->batch = batch;
  m->height = height;
  m->width = width;
  m->bn_momentum = 0.1f;
  m->bn_eps = 1e-5f;
  m->grad_scratch = be->alloc(largest_conv_output(m) * sizeof(float));

  m->input = make_activation(m, 3, height, width);
  conv_bn_init(m, &m->stem, "encoder.conv1", "encoder.bn1", &m->input, 64, 7, 2, 1,
               m->grad_scratch);
  m->grad_stem_out = make_activation(m, 64, m->stem.out.h, m->stem.out.w);
  m->grad_stem_pool = make_activation(m, 64, m->stem.out.h, m->stem.out.w);
  m->pool = (pool_desc){3, 2, 1};
  m->pooled = make_activation(m, 64, m->stem.out.h / 2, m->stem.out.w / 2);
  m->grad_pooled = make_activation(m, 64, m->pooled.h, m->pooled.w);

  const int *counts = stage_block_counts(arch);
  const tensor *x = &m->pooled;
  for (int s = 0; s < 4; s++) {
    encoder_stage *stage = &m->stages[s];
    stage->block_count = counts[s];
    stage->blocks = fp_calloc((size_t)counts[s], sizeof *stage->blocks);
    if (s > 0) stage->grad_input = make_activation(m, x->c, x->h, x->w);
    for (int b = 0; b < counts[s]; b++) {
      char name[NAMED_TENSOR_NAME_MAX];
      snprintf(name, sizeof name, "encoder.layer%d.%d", s + 1, b);
      basic_block_init(m, &stage->blocks[b], name, x, stage_channels[s], (b == 0 && s > 0) ? 2 : 1,
                       m->grad_scratch);
      x = &stage->blocks[b].conv2.out;
    }
  }
  const tensor *skips[5] = {unet_stage_output(m, 2), unet_stage_output(m, 1),
                            unet_stage_output(m, 0), &m->stem.out, NULL};
  for (int i = 0; i < 5; i++) {
    decoder_block_init(m, &m->decoder[i], i, x, skips[i], decoder_channels[i], m->grad_scratch);
    x = &m->decoder[i].conv2.out;
  }
  conv_layer_init(m, &m->head, "segmentation_head.0", (conv_desc){x->c, classes, 3, 1, 1}, 1);
  m->logits = make_activation(m, classes, height, width);
  m->grad_logits = make_activation(m, classes, height, width);

  m->params = be->alloc(m->param_list.total * sizeof(float));
  m->grads = be->alloc(m->param_list.total * sizeof(float));
  m->buffers = be->alloc(m->buffer_list.total * sizeof(float));
  init_parameters(m, seed);
  return m;
}

/* ---------------------------------------------------------------- forward */

/* Replaces this rank's batch mean and (biased) variance by the global batch's. Every rank holds
 * the same number of values per channel, so the global mean is the mean of the rank means and
 * the global variance the mean of (rank variance + (rank mean - global mean)^2); the second sum
 * waits for the global mean rather than using E[x^2] - mean^2, which loses the variance to
 * cancellation when |mean| >> std. */
static void sync_batch_statistics(unet *m, bn_layer *bn) {
  const backend *be = m->be;
  size_t c = (size_t)bn->channels;
  float *mean = m->host_stats, *variance = mean + c, *global_mean = mean + 2 * c;
  float ranks = (float)m->parallel.world_size;
  be->copy_to_host(mean, bn->batch_mean, c * sizeof(float));
  be->copy_to_host(variance, bn->batch_var, c * sizeof(float));
  memcpy(global_mean, mean, c * sizeof(float));
  m->parallel.sum_across_ranks(m->parallel.ctx, global_mean, c);
  for (size_t k = 0; k < c; k++) {
    global_mean[k] /= ranks;
    float offset = mean[k] - global_mean[k];
    variance[k] += offset * offset;
  }
  m->parallel.sum_across_ranks(m->parallel.ctx, variance, c);
  for (size_t k = 0; k < c; k++) variance[k] /= ranks;
  be->copy_from_host(bn->batch_mean, global_mean, c * sizeof(float));
  be->copy_from_host(bn->batch_var, variance, c * sizeof(float));
}

static void conv_bn_forward(unet *m, conv_bn *u, const tensor *x, int training) {
  const backend *be = m->be;
  const float *gamma = m->params + u->bn.gamma, *beta = m->params + u->bn.beta;
  float *running_mean = m->buffers + u->bn.running_mean, *running_var = m->buffers + u->bn.running_var;
  be->conv2d_forward(&u->conv.desc, x, m->params + u->conv.weight, NULL, &u->conv_out);
  if (training) {
    be->batchnorm_forward_training(&u->conv_out, gamma, beta, m->bn_eps, &u->out, u->bn.batch_mean,
                                   u->bn.batch_var);
    size_t count = (size_t)u->conv_out.n * u->conv_out.h * u->conv_out.w;
    if (m->sync_bn) {
      sync_batch_statistics(m, &u->bn);
      be->batchnorm_forward_inference(&u->conv_out, gamma, beta, u->bn.batch_mean,
                                      u->bn.batch_var, m->bn_eps, &u->out);
      count *= (size_t)m->parallel.world_size;
    }
    be->batchnorm_update_running(running_mean, running_var, u->bn.batch_mean, u->bn.batch_var,
                                 u->bn.channels, m->bn_momentum, count);
  } else {
    be->batchnorm_forward_inference(&u->conv_out, gamma, beta, running_mean, running_var,
                                    m->bn_eps, &u->out);
  }
  if (u->relu) be->relu_forward(&u->out, &u->out);
}

static const tensor *basic_block_forward(unet *m, basic_block *b, const tensor *x, int training) {
  conv_bn_forward(m, &b->conv1, x, training);
  conv_bn_forward(m, &b->conv2, &b->conv1.out, training);
  const tensor *identity = x;
  if (b->has_downsample) {
    conv_bn_forward(m, &b->downsample, x, training);
    identity = &b->downsample.out;
  }
  m->be->add(&b->conv2.out, identity, &b->conv2.out);
  m->be->relu_forward(&b->conv2.out, &b->conv2.out);
  return &b->conv2.out;
}

static const tensor *decoder_block_forward(unet *m, decoder_block *d, const tensor *x,
                                           const tensor *skip, int training) {
  m->be->upsample2x_forward(x, &d->upsampled);
  const tensor *conv_in = &d->upsampled;
  if (d->has_skip) {
    m->be->concat_channels(&d->upsampled, skip, &d->concatenated);
    conv_in = &d->concatenated;
  }
  conv_bn_forward(m, &d->conv1, conv_in, training);
  conv_bn_forward(m, &d->conv2, &d->conv1.out, training);
  return &d->conv2.out;
}

const tensor *unet_stage_output(const unet *m, int stage) {
  const encoder_stage *s = &m->stages[stage];
  return &s->blocks[s->block_count - 1].conv2.out;
}

static tensor *stage_output_grad(unet *m, int stage) {
  encoder_stage *s = &m->stages[stage];
  return &s->blocks[s->block_count - 1].grad_out;
}

void unet_forward(unet *m, int training) {
  conv_bn_forward(m, &m->stem, &m->input, training);
  m->be->maxpool_forward(&m->pool, &m->stem.out, &m->pooled);
  const tensor *x = &m->pooled;
  for (int s = 0; s < 4; s++)
    for (int b = 0; b < m->stages[s].block_count; b++)
      x = basic_block_forward(m, &m->stages[s].blocks[b], x, training);
  const tensor *skips[5] = {unet_stage_output(m, 2), unet_stage_output(m, 1),
                            unet_stage_output(m, 0), &m->stem.out, NULL};
  for (int i = 0; i < 5; i++) x = decoder_block_forward(m, &m->decoder[i], x, skips[i], training);
  m->be->conv2d_forward(&m->head.desc, x, m->params + m->head.weight, m->params + m->head.bias,
                        &m->logits);
}

/* --------------------------------------------------------------- backward */

/* grad_out is consumed (ReLU backward runs in place on it); grad_x may be NULL
 * when the input needs no gradient. */
/* The backend's batch-norm backward subtracts this rank's means of dy and dy*xhat; synchronized
 * BN needs the global batch's. The difference is, per channel, gamma/sigma * (a + b * xhat), which
 * a batch-norm inference pass with scale gamma/sigma*b and shift gamma/sigma*a computes. */
static void sync_batchnorm_backward_correction(unet *m, conv_bn *u) {
  const backend *be = m->be;
  size_t c = (size_t)u->bn.channels;
  float *local = m->host_stats, *global = local + 2 * c, *gamma = local + 4 * c,
        *variance = local + 5 * c;
  be->copy_to_host(local, m->grads + u->bn.gamma, c * sizeof(float));
  be->copy_to_host(local + c, m->grads + u->bn.beta, c * sizeof(float));
  memcpy(global, local, 2 * c * sizeof(float));
  m->parallel.sum_across_ranks(m->parallel.ctx, global, 2 * c);
  be->copy_to_host(gamma, m->params + u->bn.gamma, c * sizeof(float));
  be->copy_to_host(variance, u->bn.batch_var, c * sizeof(float));
  float local_count = (float)((size_t)u->conv_out.n * u->conv_out.h * u->conv_out.w);
  float global_count = local_count * (float)m->parallel.world_size;
  for (size_t k = 0; k < c; k++) {
    float gamma_over_sigma = gamma[k] / sqrtf(variance[k] + m->bn_eps);
    float xhat_term = local[k] / local_count - global[k] / global_count;
    float constant_term = local[c + k] / local_count - global[c + k] / global_count;
    local[k] = gamma_over_sigma * xhat_term;
    local[c + k] = gamma_over_sigma * constant_term;
  }
  be->copy_from_host(m->sync_scale, local, c * sizeof(float));
  be->copy_from_host(m->sync_shift, local + c, c * sizeof(float));
  tensor correction = u->conv_out;
  correction.data = m->sync_scratch;
  be->batchnorm_forward_inference(&u->conv_out, m->sync_scale, m->sync_shift, u->bn.batch_mean,
                                  u->bn.batch_var, m->bn_eps, &correction);
  be->add(&u->grad_conv_out, &correction, &u->grad_conv_out);
}

static void conv_bn_backward(unet *m, conv_bn *u, const tensor *x, tensor *grad_out,
                             tensor *grad_x) {
  const backend *be = m->be;
  if (u->relu) be->relu_backward(&u->out, grad_out, grad_out);
  be->batchnorm_backward(&u->conv_out, grad_out, m->params + u->bn.gamma, u->bn.batch_mean,
                         u->bn.batch_var, m->bn_eps, &u->grad_conv_out, m->grads + u->bn.gamma,
                         m->grads + u->bn.beta);
  if (m->sync_bn) sync_batchnorm_backward_correction(m, u);
  be->conv2d_backward_weights(&u->conv.desc, x, &u->grad_conv_out, m->grads + u->conv.weight,
                              NULL);
  if (grad_x) be->conv2d_backward_data(&u->conv.desc, &u->grad_conv_out,
                                       m->params + u->conv.weight, grad_x);
}

static void basic_block_backward(unet *m, basic_block *b, const tensor *x, tensor *grad_x) {
  const backend *be = m->be;
  be->relu_backward(&b->conv2.out, &b->grad_out, &b->grad_out);
  conv_bn_backward(m, &b->conv2, &b->conv1.out, &b->grad_out, &b->grad_mid);
  conv_bn_backward(m, &b->conv1, x, &b->grad_mid, grad_x);
  if (b->has_downsample) {
    conv_bn_backward(m, &b->downsample, x, &b->grad_out, &b->grad_identity);
    be->add(grad_x, &b->grad_identity, grad_x);
  } else {
    be->add(grad_x, &b->grad_out, grad_x);
  }
}

/* grad_skip receives the skip's gradient (overwritten, the skip's first). */
static void decoder_block_backward(unet *m, decoder_block *d, tensor *grad_x, tensor *grad_skip) {
  conv_bn_backward(m, &d->conv2, &d->conv1.out, &d->grad_out, &d->grad_mid);
  if (d->has_skip) {
    conv_bn_backward(m, &d->conv1, &d->concatenated, &d->grad_mid, &d->grad_concatenated);
    m->be->split_channels(&d->grad_concatenated, &d->grad_upsampled, grad_skip);
  } else {
    conv_bn_backward(m, &d->conv1, &d->upsampled, &d->grad_mid, &d->grad_upsampled);
  }
  m->be->upsample2x_backward(&d->grad_upsampled, grad_x);
}

static void grads_ready(unet *m, size_t final_from) {
  if (m->parallel.grads_ready) m->parallel.grads_ready(m->parallel.ctx, final_from);
}

void unet_backward(unet *m) {
  const backend *be = m->be;
  decoder_block *last = &m->decoder[4];
  be->conv2d_backward_weights(&m->head.desc, &last->conv2.out, &m->grad_logits,
                              m->grads + m->head.weight, m->grads + m->head.bias);
  be->conv2d_backward_data(&m->head.desc, &m->grad_logits, m->params + m->head.weight,
                           &last->grad_out);
  grads_ready(m, m->head.weight);

  tensor *skip_grads[5] = {stage_output_grad(m, 2), stage_output_grad(m, 1),
                           stage_output_grad(m, 0), &m->grad_stem_out, NULL};
  for (int i = 4; i >= 0; i--) {
    tensor *grad_x = i > 0 ? &m->decoder[i - 1].grad_out : stage_output_grad(m, 3);
    decoder_block_backward(m, &m->decoder[i], grad_x, skip_grads[i]);
    grads_ready(m, m->decoder[i].conv1.conv.weight);
  }

  for (int s = 3; s >= 0; s--) {
    encoder_stage *stage = &m->stages[s];
    for (int b = stage->block_count - 1; b >= 0; b--) {
      const tensor *x;
      tensor *grad_x;
      if (b > 0) {
        x = &stage->blocks[b - 1].conv2.out;
        grad_x = &stage->blocks[b - 1].grad_out;
      } else if (s > 0) {
        x = unet_stage_output(m, s - 1);
        grad_x = &stage->grad_input;
      } else {
        x = &m->pooled;
        grad_x = &m->grad_pooled;
      }
      basic_block_backward(m, &stage->blocks[b], x, grad_x);
      grads_ready(m, stage->blocks[b].conv1.conv.weight);
    }
    if (s > 0) be->add(stage_output_grad(m, s - 1), &stage->grad_input, stage_output_grad(m, s - 1));
  }
  be->maxpool_backward(&m->pool, &m->stem.out, &m->grad_pooled, &m->grad_stem_pool);
  be->add(&m->grad_stem_out, &m->grad_stem_pool, &m->grad_stem_out);
  conv_bn_backward(m, &m->stem, &m->input, &m->grad_stem_out, NULL);
  grads_ready(m, 0);
}

void unet_enable_sync_bn(unet *m) {
  FP_CHECK(m->parallel.sum_across_ranks && m->parallel.world_size >= 1,
           "synchronized batch norm needs the model's parallel hooks");
  if (m->sync_bn) return;
  m->sync_bn = 1;
  m->sync_scratch = m->be->alloc(largest_conv_output(m) * sizeof(float));
  m->sync_scale = m->be->alloc(widest_layer * sizeof(float));
  m->sync_shift = m->be->alloc(widest_layer * sizeof(float));
  m->host_stats = fp_malloc(6 * widest_layer * sizeof(float));
}

/* ----------------------------------------------------------------- destroy */

static void release_tensor(const backend *be, tensor *t) {
  if (t->data) be->release(t->data);
  t->data = NULL;
}

static void conv_bn_release(const backend *be, conv_bn *u) {
  release_tensor(be, &u->conv_out);
  release_tensor(be, &u->out);
  be->release(u->bn.batch_mean);
  be->release(u->bn.batch_var);
}

void unet_destroy(unet *m) {
  if (!m) return;
  const backend *be = m->be;
  conv_bn_release(be, &m->stem);
  tensor *owned[] = {&m->input,     &m->grad_stem_out, &m->grad_stem_pool, &m->pooled,
                     &m->grad_pooled, &m->logits,      &m->grad_logits};
  for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) release_tensor(be, owned[i]);
  for (int s = 0; s < 4; s++) {
    encoder_stage *stage = &m->stages[s];
    for (int b = 0; b < stage->block_count; b++) {
      basic_block *blk = &stage->blocks[b];
      conv_bn_release(be, &blk->conv1);
      conv_bn_release(be, &blk->conv2);
      if (blk->has_downsample) {
        conv_bn_release(be, &blk->downsample);
        release_tensor(be, &blk->grad_identity);
      }
      release_tensor(be, &blk->grad_mid);
      release_tensor(be, &blk->grad_out);
    }
    release_tensor(be, &stage->grad_input);
    free(stage->blocks);
  }
  for (int i = 0; i < 5; i++) {
    decoder_block *d = &m->decoder[i];
    conv_bn_release(be, &d->conv1);
    conv_bn_release(be, &d->conv2);
    tensor *parts[] = {&d->upsampled, &d->grad_upsampled, &d->concatenated,
                       &d->grad_concatenated, &d->grad_mid, &d->grad_out};
    for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) release_tensor(be, parts[k]);
  }
  be->release(m->grad_scratch);
  if (m->sync_bn) {
    be->release(m->sync_scratch);
    be->release(m->sync_scale);
    be->release(m->sync_shift);
    free(m->host_stats);
  }
  be->release(m->params);
  be->release(m->grads);
  be->release(m->buffers);
  free(m->param_list.items);
  free(m->buffer_list.items);
  free(m);
}
