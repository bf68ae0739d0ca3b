/* U-Net forward and backward, written out explicitly over the backend's op table. Building
 * the model (parameters, activations, initialisation) is in unet_build.c. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "unet.h"

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
  float *batch_mean = m->batch_stats + bn->batch_mean, *batch_var = m->batch_stats + bn->batch_var;
  be->download(mean, batch_mean, FP_F32, c);
  be->download(variance, batch_var, FP_F32, c);
  memcpy(global_mean, mean, c * sizeof *mean);
  m->parallel.sum_across_ranks(m->parallel.ctx, global_mean, c);
  for (size_t k = 0; k < c; k++) {
    global_mean[k] /= ranks;
    float offset = mean[k] - global_mean[k];
    variance[k] += offset * offset;
  }
  m->parallel.sum_across_ranks(m->parallel.ctx, variance, c);
  for (size_t k = 0; k < c; k++) variance[k] /= ranks;
  be->upload(batch_mean, global_mean, FP_F32, c);
  be->upload(batch_var, variance, FP_F32, c);
}

static void conv_bn_forward(unet *m, conv_bn *u, const tensor *x, int training) {
  const backend *be = m->be;
  const float *gamma = m->params + u->bn.gamma, *beta = m->params + u->bn.beta;
  float *running_mean = m->buffers + u->bn.running_mean,
        *running_var = m->buffers + u->bn.running_var;
  be->conv2d_forward(&u->conv.desc, x, unet_compute_weights(m, u->conv.weight), NULL, &u->conv_out);
  if (training) {
    float *batch_mean = m->batch_stats + u->bn.batch_mean;
    float *batch_var = m->batch_stats + u->bn.batch_var;
    be->batchnorm_forward_training(&u->conv_out, gamma, beta, m->bn_eps, &u->out, batch_mean,
                                   batch_var);
    size_t count = (size_t)u->conv_out.n * u->conv_out.h * u->conv_out.w;
    if (m->sync_bn) {
      sync_batch_statistics(m, &u->bn);
      be->batchnorm_forward_inference(&u->conv_out, gamma, beta, batch_mean, batch_var, m->bn_eps,
                                      &u->out);
      count *= (size_t)m->parallel.world_size;
    }
    be->batchnorm_update_running(running_mean, running_var, batch_mean, batch_var, u->bn.channels,
                                 m->bn_momentum, count);
  } else {
    be->batchnorm_forward_inference(&u->conv_out, gamma, beta, running_mean, running_var, m->bn_eps,
                                    &u->out);
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
  FP_CHECK(!training || m->mode == UNET_TRAINING,
           "unet_forward: training pass on an inference model");
  if (m->compute_params_stale) {
    m->be->convert(m->compute_params, m->compute, m->params, FP_F32, m->param_list.total);
    m->compute_params_stale = 0;
  }
  conv_bn_forward(m, &m->stem, &m->input, training);
  m->be->maxpool_forward(&m->pool, &m->stem.out, &m->pooled);
  const tensor *x = &m->pooled;
  for (int s = 0; s < 4; s++)
    for (int b = 0; b < m->stages[s].block_count; b++)
      x = basic_block_forward(m, &m->stages[s].blocks[b], x, training);
  const tensor *skips[5] = {unet_stage_output(m, 2), unet_stage_output(m, 1),
                            unet_stage_output(m, 0), &m->stem.out, NULL};
  for (int i = 0; i < 5; i++) x = decoder_block_forward(m, &m->decoder[i], x, skips[i], training);
  m->be->conv2d_forward(&m->head.desc, x, unet_compute_weights(m, m->head.weight),
                        m->params + m->head.bias, &m->logits);
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
  be->download(local, m->grads + u->bn.gamma, FP_F32, c);
  be->download(local + c, m->grads + u->bn.beta, FP_F32, c);
  memcpy(global, local, 2 * c * sizeof *local);
  m->parallel.sum_across_ranks(m->parallel.ctx, global, 2 * c);
  be->download(gamma, m->params + u->bn.gamma, FP_F32, c);
  be->download(variance, m->batch_stats + u->bn.batch_var, FP_F32, c);
  float local_count = (float)((size_t)u->conv_out.n * u->conv_out.h * u->conv_out.w);
  float global_count = local_count * (float)m->parallel.world_size;
  for (size_t k = 0; k < c; k++) {
    float gamma_over_sigma = gamma[k] / sqrtf(variance[k] + m->bn_eps);
    float xhat_term = local[k] / local_count - global[k] / global_count;
    float constant_term = local[c + k] / local_count - global[c + k] / global_count;
    local[k] = gamma_over_sigma * xhat_term;
    local[c + k] = gamma_over_sigma * constant_term;
  }
  be->upload(m->sync_scale, local, FP_F32, c);
  be->upload(m->sync_shift, local + c, FP_F32, c);
  tensor correction = u->conv_out;
  correction.data = m->sync_scratch;
  be->batchnorm_forward_inference(&u->conv_out, m->sync_scale, m->sync_shift,
                                  m->batch_stats + u->bn.batch_mean,
                                  m->batch_stats + u->bn.batch_var, m->bn_eps, &correction);
  be->add(&u->grad_conv_out, &correction, &u->grad_conv_out);
}

static void conv_bn_backward(unet *m, conv_bn *u, const tensor *x, tensor *grad_out,
                             tensor *grad_x) {
  const backend *be = m->be;
  if (u->relu) be->relu_backward(&u->out, grad_out, grad_out);
  be->batchnorm_backward(&u->conv_out, grad_out, m->params + u->bn.gamma,
                         m->batch_stats + u->bn.batch_mean, m->batch_stats + u->bn.batch_var,
                         m->bn_eps, &u->grad_conv_out, m->grads + u->bn.gamma,
                         m->grads + u->bn.beta);
  if (m->sync_bn) sync_batchnorm_backward_correction(m, u);
  be->conv2d_backward_weights(&u->conv.desc, x, &u->grad_conv_out, m->grads + u->conv.weight, NULL);
  if (grad_x)
    be->conv2d_backward_data(&u->conv.desc, &u->grad_conv_out,
                             unet_compute_weights(m, u->conv.weight), grad_x);
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
  FP_CHECK(m->mode == UNET_TRAINING, "unet_backward: an inference model has no gradients");
  const backend *be = m->be;
  decoder_block *last = &m->decoder[4];
  be->conv2d_backward_weights(&m->head.desc, &last->conv2.out, &m->grad_logits,
                              m->grads + m->head.weight, m->grads + m->head.bias);
  be->conv2d_backward_data(&m->head.desc, &m->grad_logits, unet_compute_weights(m, m->head.weight),
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
    if (s > 0)
      be->add(stage_output_grad(m, s - 1), &stage->grad_input, stage_output_grad(m, s - 1));
  }
  be->maxpool_backward(&m->pool, &m->stem.out, &m->grad_pooled, &m->grad_stem_pool);
  be->add(&m->grad_stem_out, &m->grad_stem_pool, &m->grad_stem_out);
  conv_bn_backward(m, &m->stem, &m->input, &m->grad_stem_out, NULL);
  grads_ready(m, 0);
}
