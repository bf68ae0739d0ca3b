/* Building the U-Net: parameter registration (PyTorch's names), the decoder and head (the
 * encoders are in encoder_resnet.c and encoder_vgg.c), the twin's initialisation, and activation
 * allocation for training or inference. Forward and backward are in unet.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "rng.h"
#include "unet_internal.h"

static const int decoder_channels[5] = {256, 128, 64, 32, 16};

/* In unet_arch order. */
static const char *const arch_names[] = {"r18", "r34", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"};

int unet_arch_parse(const char *name, unet_arch *arch) {
  for (size_t i = 0; i < sizeof arch_names / sizeof *arch_names; i++)
    if (!strcmp(name, arch_names[i])) {
      *arch = (unet_arch)i;
      return 0;
    }
  return -1;
}

const char *unet_arch_name(unet_arch arch) {
  return (size_t)arch < sizeof arch_names / sizeof *arch_names ? arch_names[arch] : "?";
}

static encoder_kind arch_encoder(unet_arch arch) {
  return arch == UNET_R18 || arch == UNET_R34 ? ENCODER_RESNET : ENCODER_VGG;
}

/* ----------------------------------------------------------- registration */

static size_t tensor_list_add(tensor_list *list, const char *name, int ndims, const int *dims) {
  FP_CHECK(!tensor_list_find(list, name), "tensor %s registered twice", name);
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

void name_join(char *out, const char *prefix, const char *suffix) {
  size_t a = strlen(prefix), b = strlen(suffix);
  FP_CHECK(a + b < NAMED_TENSOR_NAME_MAX, "tensor name too long: %s%s", prefix, suffix);
  memcpy(out, prefix, a);
  memcpy(out + a, suffix, b + 1);
}

void add_activation(unet *m, tensor *t, activation_kind kind, const tensor *alias_of, int c, int h,
                    int w) {
  *t = tensor_shape(m->compute, m->batch, c, h, w);
  if (m->memory.count == m->memory.capacity) {
    m->memory.capacity = m->memory.capacity ? 2 * m->memory.capacity : 128;
    activation *grown = fp_calloc((size_t)m->memory.capacity, sizeof *grown);
    if (m->memory.list) memcpy(grown, m->memory.list, (size_t)m->memory.count * sizeof *grown);
    free(m->memory.list);
    m->memory.list = grown;
  }
  m->memory.list[m->memory.count++] = (activation){t, kind, alias_of};
}

size_t param_add(unet *m, const char *name, int ndims, const int *dims) {
  return tensor_list_add(&m->param_list, name, ndims, dims);
}

void conv_layer_init(unet *m, conv_layer *layer, const char *name, conv_desc desc, int has_bias) {
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

void bn_layer_init(unet *m, bn_layer *bn, const char *name, int channels) {
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
  if (channels > m->sync.widest) m->sync.widest = channels;
  bn->batch_mean = m->batch_stat_count;
  bn->batch_var = m->batch_stat_count + (size_t)channels;
  m->batch_stat_count += 2 * (size_t)channels;
}

/* Room for the unit's folded weights (aligned to 8 elements, 16 bytes in bf16, as Tensor Core
 * kernels like their operands) and bias. */
static void folded_unit_add(folded_convs *f, conv_bn *u) {
  const conv_desc *d = &u->conv.desc;
  u->folded_weight = f->weight_total;
  f->weight_total += ((size_t)d->out_channels * d->in_channels * d->kernel * d->kernel + 7) / 8 * 8;
  u->folded_bias = f->bias_total;
  f->bias_total += (size_t)d->out_channels;
  if (f->count == f->capacity) {
    f->capacity = f->capacity ? 2 * f->capacity : 32;
    f->units = fp_realloc(f->units, (size_t)f->capacity * sizeof *f->units);
  }
  f->units[f->count++] = u;
}

/* Inferring, batch norm runs in place, so out shares conv_out's buffer unless kept. */
void conv_bn_init(unet *m, conv_bn *u, const char *conv_name, const char *bn_name, const tensor *x,
                  conv_bn_spec spec) {
  conv_desc desc = {x->c, spec.out_channels, spec.kernel, spec.stride, spec.kernel / 2};
  conv_layer_init(m, &u->conv, conv_name, desc, spec.conv_bias);
  u->has_bn = bn_name != NULL;
  u->relu = spec.relu;
  int h = conv_out_size(&desc, x->h), w = conv_out_size(&desc, x->w), c = spec.out_channels;
  if (!u->has_bn) {
    add_activation(m, &u->out, spec.kept ? ACTIVATION_KEPT : ACTIVATION_TRANSIENT, NULL, c, h, w);
    return;
  }
  bn_layer_init(m, &u->bn, bn_name, c);
  if (m->folded.enabled) folded_unit_add(&m->folded, u);
  add_activation(m, &u->conv_out, ACTIVATION_TRANSIENT, NULL, c, h, w);
  if (spec.kept)
    add_activation(m, &u->out, ACTIVATION_KEPT, NULL, c, h, w);
  else if (m->mode == UNET_INFERENCE)
    add_activation(m, &u->out, ACTIVATION_ALIAS, &u->conv_out, c, h, w);
  else
    add_activation(m, &u->out, ACTIVATION_TRANSIENT, NULL, c, h, w);
  add_activation(m, &u->grad_conv_out, ACTIVATION_SCRATCH, NULL, c, h, w);
}

/* The injected planes join the block's input: conv1 takes 5K more channels. */
static const tensor *injection_init(unet *m, decoder_block *d, const tensor *conv_in) {
  int c = conv_in->c + m->br.injected.c, h = conv_in->h, w = conv_in->w;
  add_activation(m, &d->planes, ACTIVATION_TRANSIENT, NULL, m->br.injected.c, h, w);
  add_activation(m, &d->with_planes, ACTIVATION_TRANSIENT, NULL, c, h, w);
  add_activation(m, &d->grad_with_planes, ACTIVATION_GRADIENT, NULL, c, h, w);
  add_activation(m, &d->grad_planes, ACTIVATION_GRADIENT, NULL, m->br.injected.c, h, w);
  return &d->with_planes;
}

static void decoder_block_init(unet *m, decoder_block *d, int index, const tensor *x,
                               const tensor *skip, int out_channels) {
  char conv[NAMED_TENSOR_NAME_MAX], bn[NAMED_TENSOR_NAME_MAX];
  d->has_skip = skip != NULL;
  add_activation(m, &d->upsampled, ACTIVATION_TRANSIENT, NULL, x->c, 2 * x->h, 2 * x->w);
  add_activation(m, &d->grad_upsampled, ACTIVATION_GRADIENT, NULL, x->c, 2 * x->h, 2 * x->w);
  const tensor *conv_in = &d->upsampled;
  if (skip) {
    FP_CHECK(skip->h == 2 * x->h && skip->w == 2 * x->w, "decoder skip size mismatch");
    int c = x->c + skip->c;
    add_activation(m, &d->concatenated, ACTIVATION_TRANSIENT, NULL, c, skip->h, skip->w);
    add_activation(m, &d->grad_concatenated, ACTIVATION_GRADIENT, NULL, c, skip->h, skip->w);
    conv_in = &d->concatenated;
  }
  d->injected = (m->br.inject_blocks >> index) & 1u;
  if (d->injected) conv_in = injection_init(m, d, conv_in);
  snprintf(conv, sizeof conv, "decoder.blocks.%d.conv1.0", index);
  snprintf(bn, sizeof bn, "decoder.blocks.%d.conv1.1", index);
  conv_bn_init(m, &d->conv1, conv, bn, conv_in, (conv_bn_spec){out_channels, 3, 1, 0, 1, 0});
  snprintf(conv, sizeof conv, "decoder.blocks.%d.conv2.0", index);
  snprintf(bn, sizeof bn, "decoder.blocks.%d.conv2.1", index);
  conv_bn_init(m, &d->conv2, conv, bn, &d->conv1.out, (conv_bn_spec){out_channels, 3, 1, 0, 1, 0});
  const tensor *y = &d->conv2.out;
  add_activation(m, &d->grad_mid, ACTIVATION_GRADIENT, NULL, out_channels, y->h, y->w);
  add_activation(m, &d->grad_out, ACTIVATION_GRADIENT, NULL, out_channels, y->h, y->w);
}

static void build_layers(unet *m, const unet_config *config) {
  add_activation(m, &m->input, ACTIVATION_KEPT, NULL, 3, m->height, m->width);
  m->enc.kind = arch_encoder(m->arch);
  if (m->enc.kind == ENCODER_RESNET)
    resnet_encoder_build(m, &m->enc);
  else
    vgg_encoder_build(m, &m->enc);
  m->encoder_params = m->param_list.total;
  /* registered before the decoder: their gradients are final after the decoder's */
  branches_build(m, config);
  /* f5 is the first block's input; f4, f3, f2, f1 its skips */
  const tensor *x = m->enc.features[4];
  for (int i = 0; i < 5; i++) {
    decoder_block_init(m, &m->decoder[i], i, x, i < 4 ? m->enc.features[3 - i] : NULL,
                       decoder_channels[i]);
    x = &m->decoder[i].conv2.out;
  }
  conv_layer_init(m, &m->head, "segmentation_head.0", (conv_desc){x->c, m->classes, 3, 1, 1}, 1);
  add_activation(m, &m->logits, ACTIVATION_KEPT, NULL, m->classes, m->height, m->width);
  add_activation(m, &m->grad_logits, ACTIVATION_GRADIENT, NULL, m->classes, m->height, m->width);
}

/* Training: every activation its own buffer, scratch shared. Inference: gradients and scratch
 * absent, transients take the ring's slots in the order forward writes them, so a slot is
 * reused only UNET_RING_SLOTS transients later, when forward no longer reads it. */
static void allocate_activations(unet *m) {
  const backend *be = m->be;
  size_t ring_bytes = 0;

  for (int i = 0; i < m->memory.count; i++) {
    const activation *a = &m->memory.list[i];
    size_t bytes = be->tensor_bytes(a->t);
    if (a->kind == ACTIVATION_SCRATCH && bytes > m->memory.scratch_bytes)
      m->memory.scratch_bytes = bytes;
    if (a->kind == ACTIVATION_TRANSIENT && bytes > ring_bytes) ring_bytes = bytes;
  }
  int training = m->mode == UNET_TRAINING, next_slot = 0;
  if (training)
    m->memory.scratch = be->alloc(FP_U8, m->memory.scratch_bytes);
  else
    for (int s = 0; s < UNET_RING_SLOTS; s++) m->memory.ring[s] = be->alloc(FP_U8, ring_bytes);
  m->memory.ring_bytes = training ? 0 : ring_bytes;
  for (int i = 0; i < m->memory.count; i++) {
    activation *a = &m->memory.list[i];
    switch (a->kind) {
    case ACTIVATION_KEPT:
      be->tensor_alloc(a->t);
      break;
    case ACTIVATION_TRANSIENT:
      if (training)
        be->tensor_alloc(a->t);
      else
        a->t->data = m->memory.ring[next_slot++ % UNET_RING_SLOTS];
      break;
    case ACTIVATION_GRADIENT:
      if (training) be->tensor_alloc(a->t);
      break;
    case ACTIVATION_SCRATCH:
      a->t->data = m->memory.scratch;
      break;
    case ACTIVATION_ALIAS:
      a->t->data = a->alias_of->data;
      break;
    }
  }
}

static int owns_buffer(const unet *m, activation_kind kind) {
  return kind == ACTIVATION_KEPT || (m->mode == UNET_TRAINING &&
                                     (kind == ACTIVATION_TRANSIENT || kind == ACTIVATION_GRADIENT));
}

size_t unet_activation_bytes(const unet *m) {
  size_t total =
      m->memory.scratch_bytes * (m->mode == UNET_TRAINING) + m->memory.ring_bytes * UNET_RING_SLOTS;
  for (int i = 0; i < m->memory.count; i++)
    if (owns_buffer(m, m->memory.list[i].kind)) total += m->be->tensor_bytes(m->memory.list[i].t);
  return total;
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
 * kaiming-uniform (fan_in, relu), head and fully connected layers (the 2-D weights)
 * xavier-uniform, biases 0, BN 1/0 (a 1-D `.weight` is a batch norm's; layers of other shapes
 * fail here until their init is written). */
static void init_parameters(unet *m, uint64_t seed) {
  rng r;
  rng_seed(&r, seed);
  float *host = fp_calloc(m->param_list.total, sizeof *host);
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
        double bound =
            has_prefix(t->name, "decoder.") ? sqrt(6.0 / fan_in) : sqrt(6.0 / (fan_in + fan_out));
        for (size_t k = 0; k < t->count; k++) p[k] = (float)(bound * (2.0 * rng_uniform(&r) - 1.0));
      }
    } else if (t->ndims == 2) {
      double bound = sqrt(6.0 / (t->dims[0] + t->dims[1]));
      for (size_t k = 0; k < t->count; k++) p[k] = (float)(bound * (2.0 * rng_uniform(&r) - 1.0));
    } else if (has_suffix(t->name, ".weight")) {
      FP_CHECK(t->ndims == 1, "init: no rule for the %d-D parameter %s", t->ndims, t->name);
      for (size_t k = 0; k < t->count; k++) p[k] = 1.0f;
    } else {
      FP_CHECK(has_suffix(t->name, ".bias"), "init: no rule for parameter %s", t->name);
    }
  }
  m->be->upload(m->params, host, FP_F32, m->param_list.total);
  memset(host, 0, m->param_list.total * sizeof *host);
  for (int i = 0; i < m->buffer_list.count; i++) {
    const named_tensor *t = &m->buffer_list.items[i];
    if (has_suffix(t->name, ".running_var"))
      for (size_t k = 0; k < t->count; k++) host[t->offset + k] = 1.0f;
  }
  m->be->upload(m->buffers, host, FP_F32, m->buffer_list.total);
  free(host);
  unet_weights_changed(m);
}

unet *unet_create(const backend *be, const unet_config *config, uint64_t seed) {
  int height = config->height, width = config->width;
  FP_CHECK(height % 32 == 0 && width % 32 == 0 && height > 0 && width > 0,
           "model input %dx%d: height and width must be positive multiples of 32", height, width);
  FP_CHECK(config->classes >= 2 && config->classes <= 255, "model: %d classes (2..255 supported)",
           config->classes);
  FP_CHECK(config->batch >= 1, "model: batch %d", config->batch);
  FP_CHECK(config->compute == FP_F32 || config->compute == FP_BF16 || config->compute == FP_F16,
           "model: compute precision %s (f32, bf16 or f16)", fp_dtype_name(config->compute));
  unet *m = fp_calloc(1, sizeof *m);
  m->be = be;
  m->arch = config->arch;
  m->classes = config->classes;
  m->batch = config->batch;
  m->height = height;
  m->width = width;
  m->compute = config->compute;
  m->mode = config->mode;
  m->bn_momentum = 0.1f;
  m->bn_eps = 1e-5f;
  m->br.dropout_seed = seed;
  m->folded.enabled = m->mode == UNET_INFERENCE && !config->unfolded;
  build_layers(m, config);
  allocate_activations(m);
  m->params = be->alloc(FP_F32, m->param_list.total);
  if (m->mode == UNET_TRAINING) {
    m->grads = be->alloc(FP_F32, m->param_list.total);
    m->batch_stats = be->alloc(FP_F32, m->batch_stat_count);
  }
  m->buffers = be->alloc(FP_F32, m->buffer_list.total);
  m->compute_params =
      m->compute == FP_F32 ? (void *)m->params : be->alloc(m->compute, m->param_list.total);
  m->scalars = be->alloc(FP_F64, SCALAR_COUNT);
  m->grad_final = fp_calloc((size_t)m->param_list.count, 1);
  if (m->folded.count) {
    m->folded.weights = be->alloc(m->compute, m->folded.weight_total);
    m->folded.biases = be->alloc(FP_F32, m->folded.bias_total);
  }
  init_parameters(m, seed);
  unet_set_dropout_draw(m, 0, 0);
  return m;
}

void unet_freeze_encoder(unet *m, int frozen) {
  m->encoder_frozen = frozen;
}

size_t unet_trained_from(const unet *m) {
  return m->encoder_frozen ? m->encoder_params : 0;
}

void unet_weights_changed(unet *m) {
  m->compute_params_stale = m->compute != FP_F32;
  m->folded.stale = m->folded.enabled;
}

static void fold_batch_norms(unet *m) {
  const float *p = m->params, *b = m->buffers;
  size_t element = fp_dtype_size(m->compute);
  for (int i = 0; i < m->folded.count; i++) {
    const conv_bn *u = m->folded.units[i];
    m->be->batchnorm_fold(&u->conv.desc, p + u->conv.weight,
                          u->conv.has_bias ? p + u->conv.bias : NULL, p + u->bn.gamma,
                          p + u->bn.beta, b + u->bn.running_mean, b + u->bn.running_var, m->bn_eps,
                          (char *)m->folded.weights + u->folded_weight * element, m->compute,
                          m->folded.biases + u->folded_bias);
  }
  m->folded.stale = 0;
}

void unet_refresh_compute_weights(unet *m) {
  if (m->compute_params_stale) {
    m->be->convert(m->compute_params, m->compute, m->params, FP_F32, m->param_list.total);
    m->compute_params_stale = 0;
  }
  if (m->folded.stale) fold_batch_norms(m);
}

void unet_read_scalars(const unet *m, double scalars[SCALAR_COUNT]) {
  m->be->download(scalars, m->scalars, FP_F64, SCALAR_COUNT);
  FP_CHECK(scalars[SCALAR_BAD_LABELS] == 0.0,
           "%.0f labels of the batch are outside the model's %d classes (and not the ignore "
           "label)",
           scalars[SCALAR_BAD_LABELS], m->classes);
}

const void *unet_compute_weights(const unet *m, size_t offset) {
  return (const char *)m->compute_params + offset * fp_dtype_size(m->compute);
}

void unet_enable_sync_bn(unet *m) {
  FP_CHECK(m->parallel.mean_across_ranks && m->parallel.world_size >= 1,
           "synchronized batch norm needs the model's parallel hooks");
  FP_CHECK(m->mode == UNET_TRAINING, "synchronized batch norm needs a training model");
  if (m->sync.enabled) return;
  m->sync.enabled = 1;
  /* the correction of any batch-norm input: the decoder's (scratch) or the class branch's */
  size_t bytes = m->memory.scratch_bytes;
  if (m->br.mode != BRANCHES_NONE && m->be->tensor_bytes(&m->br.cls.hidden) > bytes)
    bytes = m->be->tensor_bytes(&m->br.cls.hidden);
  m->sync.scratch = m->be->alloc(FP_U8, bytes);
  m->sync.scale = m->be->alloc(FP_F32, (size_t)m->sync.widest);
  m->sync.shift = m->be->alloc(FP_F32, (size_t)m->sync.widest);
  m->sync.means = m->be->alloc(FP_F32, 2 * (size_t)m->sync.widest);
}

/* ----------------------------------------------------------------- destroy */

void unet_destroy(unet *m) {
  if (!m) return;
  const backend *be = m->be;
  for (int i = 0; i < m->memory.count; i++)
    if (owns_buffer(m, m->memory.list[i].kind)) be->tensor_release(m->memory.list[i].t);
  free(m->memory.list);
  if (m->enc.kind == ENCODER_RESNET) resnet_encoder_release(&m->enc.resnet);
  branches_release(m);
  for (int s = 0; s < UNET_RING_SLOTS; s++)
    if (m->memory.ring[s]) be->release(m->memory.ring[s]);
  void *buffers[] = {m->memory.scratch, m->grads,          m->batch_stats,  m->buffers,
                     m->scalars,        m->sync.scratch,   m->sync.scale,   m->sync.shift,
                     m->sync.means,     m->folded.weights, m->folded.biases};
  for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++)
    if (buffers[i]) be->release(buffers[i]);
  if (m->compute_params != m->params) be->release(m->compute_params);
  be->release(m->params);
  free(m->grad_final);
  free(m->folded.units);
  free(m->param_list.items);
  free(m->buffer_list.items);
  free(m);
}
