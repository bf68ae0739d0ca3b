/* CPU backend: batch normalisation (oneDNN). Data in f32 or bf16; scale, shift, mean, variance
 * and their gradients f32. */
#include <math.h>

#include "cpu_internal.h"

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
  e->unused_shift = cpu_alloc_bytes((size_t)x->c * sizeof(float));
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

static void check_same(const char *op, const tensor *a, const tensor *b) {
  FP_CHECK(FP_SAME_SHAPE(a, b) && a->dtype == b->dtype,
           "%s: tensors %dx%dx%dx%d %s and %dx%dx%dx%d %s differ", op, a->n, a->c, a->h, a->w,
           fp_dtype_name(a->dtype), b->n, b->c, b->h, b->w, fp_dtype_name(b->dtype));
}

void cpu_batchnorm_forward_training(const tensor *x, const float *gamma, const float *beta,
                                    float eps, tensor *y, float *batch_mean, float *batch_var) {
  check_same("batch norm", x, y);
  bn_entry *e = bn_lookup(x, eps);
  exec_arg args[6] = {
      {DNNL_ARG_SRC, &e->data_md, x->data},        {DNNL_ARG_DST, &e->data_md, y->data},
      {DNNL_ARG_SCALE, &e->channel_md, gamma},     {DNNL_ARG_SHIFT, &e->channel_md, beta},
      {DNNL_ARG_MEAN, &e->channel_md, batch_mean}, {DNNL_ARG_VARIANCE, &e->channel_md, batch_var},
  };
  execute(e->training, 6, args);
}

void cpu_batchnorm_forward_inference(const tensor *x, const float *gamma, const float *beta,
                                     const float *running_mean, const float *running_var, float eps,
                                     tensor *y) {
  check_same("batch norm", x, y);
  bn_entry *e = bn_lookup(x, eps);
  exec_arg args[6] = {
      {DNNL_ARG_SRC, &e->data_md, x->data},
      {DNNL_ARG_DST, &e->data_md, y->data},
      {DNNL_ARG_SCALE, &e->channel_md, gamma},
      {DNNL_ARG_SHIFT, &e->channel_md, beta},
      {DNNL_ARG_MEAN, &e->channel_md, running_mean},
      {DNNL_ARG_VARIANCE, &e->channel_md, running_var},
  };
  execute(e->inference, 6, args);
}

void cpu_batchnorm_backward(const tensor *x, const tensor *dy, const float *gamma,
                            const float *batch_mean, const float *batch_var, float eps, tensor *dx,
                            float *grad_gamma, float *grad_beta) {
  check_same("batch norm backward", x, dy);
  check_same("batch norm backward", x, dx);
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

void cpu_batchnorm_update_running(float *running_mean, float *running_var, const float *batch_mean,
                                  const float *batch_var, int channels, float momentum,
                                  size_t count_per_channel) {
  float unbias =
      count_per_channel > 1 ? (float)count_per_channel / (float)(count_per_channel - 1) : 1.0f;
  for (int c = 0; c < channels; c++) {
    running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * batch_mean[c];
    running_var[c] = (1.0f - momentum) * running_var[c] + momentum * batch_var[c] * unbias;
  }
}

void cpu_batchnorm_fold(const conv_desc *d, const float *weights, const float *conv_bias,
                        const float *gamma, const float *beta, const float *mean, const float *var,
                        float eps, void *folded_weights, fp_dtype type, float *folded_bias) {
  size_t per_output = (size_t)d->in_channels * d->kernel * d->kernel;
  size_t count = per_output * (size_t)d->out_channels;
  float *folded = type == FP_F32 ? folded_weights : cpu_workspace(CPU_WS_OUTPUT, count * 4);
  for (int o = 0; o < d->out_channels; o++) {
    float scale = gamma[o] / sqrtf(var[o] + eps);
    for (size_t k = 0; k < per_output; k++)
      folded[(size_t)o * per_output + k] = weights[(size_t)o * per_output + k] * scale;
    folded_bias[o] = beta[o] + ((conv_bias ? conv_bias[o] : 0.0f) - mean[o]) * scale;
  }
  if (type == FP_F32) return;
  dnnl_dim_t dims[1] = {(dnnl_dim_t)count};
  dnnl_memory_desc_t from = md_by_tag(1, dims, dnnl_f32, dnnl_a);
  dnnl_memory_desc_t to = md_by_tag(1, dims, dnnl_type(type), dnnl_a);
  reorder(&from, folded, &to, folded_weights);
}

void cpu_batchnorm_sync_moments(float *batch_mean, float *batch_var, const float *global_mean,
                                int channels) {
  for (int c = 0; c < channels; c++) {
    float offset = batch_mean[c] - global_mean[c];
    batch_var[c] += offset * offset;
    batch_mean[c] = global_mean[c];
  }
}

void cpu_batchnorm_sync_backward_terms(const float *grad_gamma, const float *grad_beta,
                                       const float *mean_grads, const float *gamma,
                                       const float *batch_var, float eps, size_t count_per_channel,
                                       int channels, float *scale, float *shift) {
  float count = (float)count_per_channel;
  for (int c = 0; c < channels; c++) {
    float gamma_over_sigma = gamma[c] / sqrtf(batch_var[c] + eps);
    scale[c] = gamma_over_sigma * ((grad_gamma[c] - mean_grads[c]) / count);
    shift[c] = gamma_over_sigma * ((grad_beta[c] - mean_grads[channels + c]) / count);
  }
}
