/* U-Net forward and backward, written out explicitly over the backend's op table: the
 * conv(+BN)(+ReLU) unit with synchronized batch norm, the decoder and head, and the order of the
 * whole pass. Building the model is in unet_build.c, the encoders in encoder_*.c. */
#include <string.h>

#include "check.h"
#include "unet_internal.h"

/* ---------------------------------------------------------------- forward */

/* Replaces this rank's batch mean and (biased) variance by the global batch's, on the backend.
 * Every rank holds the same number of values per channel, so the global mean is the mean of the
 * rank means and the global variance the mean of (rank variance + (rank mean - global mean)^2);
 * the second all-reduce waits for the global mean rather than using E[x^2] - mean^2, which loses
 * the variance to cancellation when |mean| >> std. */
static void sync_batch_statistics(unet *m, bn_layer *bn) {
  const backend *be = m->be;
  float *batch_mean = m->batch_stats + bn->batch_mean, *batch_var = m->batch_stats + bn->batch_var;
  be->copy(m->sync.means, batch_mean, FP_F32, (size_t)bn->channels);
  m->parallel.mean_across_ranks(m->parallel.ctx, m->sync.means, (size_t)bn->channels);
  be->batchnorm_sync_moments(batch_mean, batch_var, m->sync.means, bn->channels);
  m->parallel.mean_across_ranks(m->parallel.ctx, batch_var, (size_t)bn->channels);
}

void batch_norm_forward(unet *m, bn_layer *bn, const tensor *x, tensor *y, int training) {
  const backend *be = m->be;
  const float *gamma = m->params + bn->gamma, *beta = m->params + bn->beta;
  float *running_mean = m->buffers + bn->running_mean, *running_var = m->buffers + bn->running_var;
  if (!training) {
    be->batchnorm_forward_inference(x, gamma, beta, running_mean, running_var, m->bn_eps, y);
    return;
  }
  float *batch_mean = m->batch_stats + bn->batch_mean, *batch_var = m->batch_stats + bn->batch_var;
  be->batchnorm_forward_training(x, gamma, beta, m->bn_eps, y, batch_mean, batch_var);
  size_t count = (size_t)x->n * x->h * x->w;
  if (m->sync.enabled) {
    sync_batch_statistics(m, bn);
    be->batchnorm_forward_inference(x, gamma, beta, batch_mean, batch_var, m->bn_eps, y);
    count *= (size_t)m->parallel.world_size;
  }
  be->batchnorm_update_running(running_mean, running_var, batch_mean, batch_var, bn->channels,
                               m->bn_momentum, count);
}

void conv_bn_forward_fused(unet *m, conv_bn *u, const tensor *x, const tensor *residual, int relu) {
  const void *weights;
  const float *bias;
  if (u->has_bn) {
    weights = (const char *)m->folded.weights + u->folded_weight * fp_dtype_size(m->compute);
    bias = m->folded.biases + u->folded_bias;
  } else {
    weights = unet_compute_weights(m, u->conv.weight);
    bias = u->conv.has_bias ? m->params + u->conv.bias : NULL;
  }
  conv_epilogue epilogue = {residual, relu};
  m->be->conv2d_forward_fused(&u->conv.desc, x, weights, bias, &epilogue, &u->out);
}

void conv_bn_forward(unet *m, conv_bn *u, const tensor *x, int training) {
  if (m->folded.enabled) { /* an inference model, which never trains */
    conv_bn_forward_fused(m, u, x, NULL, u->relu);
    return;
  }
  const float *bias = u->conv.has_bias ? m->params + u->conv.bias : NULL;
  const void *weights = unet_compute_weights(m, u->conv.weight);
  tensor *conv_out = u->has_bn ? &u->conv_out : &u->out;
  m->be->conv2d_forward(&u->conv.desc, x, weights, bias, conv_out);
  if (u->has_bn) batch_norm_forward(m, &u->bn, &u->conv_out, &u->out, training);
  if (u->relu) m->be->relu_forward(&u->out, &u->out);
}

static const tensor *decoder_block_forward(unet *m, decoder_block *d, const tensor *x,
                                           const tensor *skip, int training) {
  m->be->upsample2x_forward(x, &d->upsampled);
  const tensor *conv_in = &d->upsampled;
  if (d->has_skip) {
    m->be->concat_channels(&d->upsampled, skip, &d->concatenated);
    conv_in = &d->concatenated;
  }
  if (d->injected) {
    m->be->broadcast_plane(&m->br.injected, &d->planes);
    m->be->concat_channels(conv_in, &d->planes, &d->with_planes);
    conv_in = &d->with_planes;
  }
  conv_bn_forward(m, &d->conv1, conv_in, training);
  conv_bn_forward(m, &d->conv2, &d->conv1.out, training);
  return &d->conv2.out;
}

void unet_forward(unet *m, int training) {
  FP_CHECK(!training || m->mode == UNET_TRAINING,
           "unet_forward: training pass on an inference model");
  unet_refresh_compute_weights(m);
  if (m->enc.kind == ENCODER_RESNET)
    resnet_encoder_forward(m, &m->enc.resnet, training);
  else
    vgg_encoder_forward(m, &m->enc.vgg, training);
  branches_forward(m, training);
  const tensor *x = m->enc.features[4];
  for (int i = 0; i < 5; i++)
    x = decoder_block_forward(m, &m->decoder[i], x, i < 4 ? m->enc.features[3 - i] : NULL,
                              training);
  m->be->conv2d_forward(&m->head.desc, x, unet_compute_weights(m, m->head.weight),
                        m->params + m->head.bias, &m->logits);
}

/* --------------------------------------------------------------- backward */

/* The backend's batch-norm backward subtracts this rank's means of dy and dy*xhat; synchronized
 * BN needs the global batch's. The difference is, per channel, scale * xhat + shift
 * (batchnorm_sync_backward_terms), which a batch-norm inference pass computes. */
static void sync_batchnorm_backward_correction(unet *m, bn_layer *bn, const tensor *x,
                                               tensor *grad_x) {
  const backend *be = m->be;
  size_t c = (size_t)bn->channels;
  const float *grad_gamma = m->grads + bn->gamma, *grad_beta = m->grads + bn->beta;
  const float *batch_mean = m->batch_stats + bn->batch_mean,
              *batch_var = m->batch_stats + bn->batch_var;
  be->copy(m->sync.means, grad_gamma, FP_F32, c);
  be->copy(m->sync.means + c, grad_beta, FP_F32, c);
  m->parallel.mean_across_ranks(m->parallel.ctx, m->sync.means, 2 * c);
  be->batchnorm_sync_backward_terms(grad_gamma, grad_beta, m->sync.means, m->params + bn->gamma,
                                    batch_var, m->bn_eps, (size_t)x->n * x->h * x->w, bn->channels,
                                    m->sync.scale, m->sync.shift);
  tensor correction = *x;
  correction.data = m->sync.scratch;
  be->batchnorm_forward_inference(x, m->sync.scale, m->sync.shift, batch_mean, batch_var, m->bn_eps,
                                  &correction);
  be->add(grad_x, &correction, grad_x);
}

void batch_norm_backward(unet *m, bn_layer *bn, const tensor *x, const tensor *grad_y,
                         tensor *grad_x) {
  m->be->batchnorm_backward(x, grad_y, m->params + bn->gamma, m->batch_stats + bn->batch_mean,
                            m->batch_stats + bn->batch_var, m->bn_eps, grad_x, m->grads + bn->gamma,
                            m->grads + bn->beta);
  if (m->sync.enabled) sync_batchnorm_backward_correction(m, bn, x, grad_x);
  mark_grads_final(m, bn->gamma);
  mark_grads_final(m, bn->beta);
}

void conv_bn_backward(unet *m, conv_bn *u, const tensor *x, tensor *grad_out, tensor *grad_x) {
  const backend *be = m->be;
  if (u->relu) be->relu_backward(&u->out, grad_out, grad_out);
  const tensor *grad_conv = grad_out;
  if (u->has_bn) {
    batch_norm_backward(m, &u->bn, &u->conv_out, grad_out, &u->grad_conv_out);
    grad_conv = &u->grad_conv_out;
  }
  be->conv2d_backward_weights(&u->conv.desc, x, grad_conv, m->grads + u->conv.weight,
                              u->conv.has_bias ? m->grads + u->conv.bias : NULL);
  mark_grads_final(m, u->conv.weight);
  if (u->conv.has_bias) mark_grads_final(m, u->conv.bias);
  if (grad_x)
    be->conv2d_backward_data(&u->conv.desc, grad_conv, unet_compute_weights(m, u->conv.weight),
                             grad_x);
}

/* The gradient w.r.t. the injected vector: written to br.grad_injected by the first injected
 * block backward meets, added to it by the others. */
static void injection_backward(unet *m, decoder_block *d, int first) {
  branches *b = &m->br;
  m->be->sum_plane(&d->grad_planes, first ? &b->grad_injected : &b->grad_injected_block);
  if (!first) m->be->add(&b->grad_injected, &b->grad_injected_block, &b->grad_injected);
}

/* grad_skip receives the skip's gradient (overwritten, the skip's first). */
static void decoder_block_backward(unet *m, decoder_block *d, tensor *grad_x, tensor *grad_skip,
                                   int first_injected) {
  conv_bn_backward(m, &d->conv2, &d->conv1.out, &d->grad_out, &d->grad_mid);
  const tensor *conv_in = d->has_skip ? &d->concatenated : &d->upsampled;
  tensor *grad_conv_in = d->has_skip ? &d->grad_concatenated : &d->grad_upsampled;
  if (d->injected) {
    conv_bn_backward(m, &d->conv1, &d->with_planes, &d->grad_mid, &d->grad_with_planes);
    m->be->split_channels(&d->grad_with_planes, grad_conv_in, &d->grad_planes);
    injection_backward(m, d, first_injected);
  } else {
    conv_bn_backward(m, &d->conv1, conv_in, &d->grad_mid, grad_conv_in);
  }
  if (d->has_skip) m->be->split_channels(&d->grad_concatenated, &d->grad_upsampled, grad_skip);
  m->be->upsample2x_backward(&d->grad_upsampled, grad_x);
}

/* Parameter tensors are registered in increasing offsets: the one at `offset` by bisection. */
static int param_index(const unet *m, size_t offset) {
  int low = 0, high = m->param_list.count - 1;
  while (low < high) {
    int mid = (low + high + 1) / 2;
    if (m->param_list.items[mid].offset <= offset)
      low = mid;
    else
      high = mid - 1;
  }
  FP_CHECK(m->param_list.items[low].offset == offset, "no parameter tensor at offset %zu", offset);
  return low;
}

void mark_grads_final(unet *m, size_t offset) {
  m->grad_final[param_index(m, offset)] = 1;
}

void grads_ready(unet *m, size_t final_from) {
  for (int i = m->param_list.count - 1; i >= 0 && m->param_list.items[i].offset >= final_from; i--)
    FP_CHECK(m->grad_final[i],
             "backward reported the gradients from offset %zu final, but %s's "
             "is not computed yet",
             final_from, m->param_list.items[i].name);
  if (m->parallel.grads_ready) m->parallel.grads_ready(m->parallel.ctx, final_from);
}

void unet_backward(unet *m) {
  FP_CHECK(m->mode == UNET_TRAINING, "unet_backward: an inference model has no gradients");
  const backend *be = m->be;
  memset(m->grad_final, 0, (size_t)m->param_list.count);
  decoder_block *last = &m->decoder[4];
  be->conv2d_backward_weights(&m->head.desc, &last->conv2.out, &m->grad_logits,
                              m->grads + m->head.weight, m->grads + m->head.bias);
  be->conv2d_backward_data(&m->head.desc, &m->grad_logits, unet_compute_weights(m, m->head.weight),
                           &last->grad_out);
  mark_grads_final(m, m->head.weight);
  mark_grads_final(m, m->head.bias);
  grads_ready(m, m->head.weight);

  /* block 0's input is f5; blocks 0..3 skip f4..f1 */
  int injected_seen = 0;
  for (int i = 4; i >= 0; i--) {
    tensor *grad_x = i > 0 ? &m->decoder[i - 1].grad_out : m->enc.feature_grads[4];
    decoder_block *d = &m->decoder[i];
    decoder_block_backward(m, d, grad_x, i < 4 ? m->enc.feature_grads[3 - i] : NULL,
                           d->injected && !injected_seen++);
    grads_ready(m, d->conv1.conv.weight);
  }
  branches_backward(m);
  if (m->encoder_frozen) return;
  if (m->enc.kind == ENCODER_RESNET)
    resnet_encoder_backward(m, &m->enc.resnet);
  else
    vgg_encoder_backward(m, &m->enc.vgg);
}
