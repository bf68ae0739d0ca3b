/* The VGG16/19 encoder, with or without batch norm, as segmentation_models_pytorch builds it
 * from torchvision's `features` (parameter names encoder.features.<index>.*): five blocks of 3x3
 * convs with bias (+ BN) + ReLU, each block after the first starting with a 2x2 max pool of the
 * previous block's output, and a last max pool after block 5. */
#include <stdio.h>

#include "check.h"
#include "unet_internal.h"

static const int block_channels[VGG_BLOCKS] = {64, 128, 256, 512, 512};

static int convs_per_block(unet_arch arch, int block) {
  static const int vgg16[VGG_BLOCKS] = {2, 2, 3, 3, 3}, vgg19[VGG_BLOCKS] = {2, 2, 4, 4, 4};
  return arch == UNET_VGG16 || arch == UNET_VGG16_BN ? vgg16[block] : vgg19[block];
}

static int with_batch_norm(unet_arch arch) {
  return arch == UNET_VGG16_BN || arch == UNET_VGG19_BN;
}

/* Registers block `b`'s convs, whose first index in torchvision's `features` is *index. */
static void vgg_block_init(unet *m, vgg_block *block, int b, const tensor *x, int *index) {
  const int bn = with_batch_norm(m->arch), channels = block_channels[b];
  block->conv_count = convs_per_block(m->arch, b);
  for (int k = 0; k < block->conv_count; k++) {
    char conv[NAMED_TENSOR_NAME_MAX], norm[NAMED_TENSOR_NAME_MAX];
    snprintf(conv, sizeof conv, "encoder.features.%d", *index);
    snprintf(norm, sizeof norm, "encoder.features.%d", *index + 1);
    /* blocks 1..4's outputs are the decoder's skips */
    int kept = b > 0 && k == block->conv_count - 1;
    conv_bn_init(m, &block->convs[k], conv, bn ? norm : NULL, x,
                 (conv_bn_spec){channels, 3, 1, 1, 1, kept});
    x = &block->convs[k].out;
    *index += bn ? 3 : 2; /* conv, (BN,) ReLU */
  }
  *index += 1; /* the max pool */
  for (int i = 0; i < 2 && i < block->conv_count - 1; i++)
    add_activation(m, &block->grad_mid[i], ACTIVATION_GRADIENT, NULL, channels, x->h, x->w);
  add_activation(m, &block->grad_out, ACTIVATION_GRADIENT, NULL, channels, x->h, x->w);
  if (b > 0)
    add_activation(m, &block->grad_unpooled, ACTIVATION_SCRATCH, NULL, channels, x->h, x->w);
}

static const tensor *block_output(const vgg_block *block) {
  return &block->convs[block->conv_count - 1].out;
}

void vgg_encoder_build(unet *m, encoder *enc) {
  vgg_encoder *v = &enc->vgg;
  v->pool = (pool_desc){2, 2, 0};
  const tensor *x = &m->input;
  int index = 0;
  for (int b = 0; b < VGG_BLOCKS; b++) {
    vgg_block *block = &v->blocks[b];
    if (b > 0) {
      add_activation(m, &block->pooled, ACTIVATION_TRANSIENT, NULL, x->c, x->h / 2, x->w / 2);
      add_activation(m, &block->grad_pooled, ACTIVATION_GRADIENT, NULL, x->c, x->h / 2, x->w / 2);
      x = &block->pooled;
    }
    vgg_block_init(m, block, b, x, &index);
    x = block_output(block);
  }
  add_activation(m, &v->final_pooled, ACTIVATION_KEPT, NULL, x->c, x->h / 2, x->w / 2);
  add_activation(m, &v->grad_final_pooled, ACTIVATION_GRADIENT, NULL, x->c, x->h / 2, x->w / 2);
  for (int f = 0; f < 4; f++) {
    enc->features[f] = block_output(&v->blocks[f + 1]);
    enc->feature_grads[f] = &v->blocks[f + 1].grad_out;
  }
  enc->features[4] = &v->final_pooled;
  enc->feature_grads[4] = &v->grad_final_pooled;
}

void vgg_encoder_forward(unet *m, vgg_encoder *v, int training) {
  const tensor *x = &m->input;
  for (int b = 0; b < VGG_BLOCKS; b++) {
    vgg_block *block = &v->blocks[b];
    if (b > 0) {
      m->be->maxpool_forward(&v->pool, x, &block->pooled);
      x = &block->pooled;
    }
    for (int k = 0; k < block->conv_count; k++) {
      conv_bn_forward(m, &block->convs[k], x, training);
      x = &block->convs[k].out;
    }
  }
  m->be->maxpool_forward(&v->pool, x, &v->final_pooled);
}

/* The convs of one block, last first; grad_out is the gradient w.r.t. the block's output. The
 * gradient between convs k-1 and k alternates between the two grad_mid buffers, so no conv
 * reads and writes the same one. */
static void vgg_block_backward(unet *m, vgg_block *block, const tensor *input, tensor *grad_input) {
  tensor *grad = &block->grad_out;
  for (int k = block->conv_count - 1; k >= 0; k--) {
    const tensor *x = k > 0 ? &block->convs[k - 1].out : input;
    tensor *grad_x = k > 0 ? &block->grad_mid[(block->conv_count - 1 - k) % 2] : grad_input;
    conv_bn_backward(m, &block->convs[k], x, grad, grad_x);
    grads_ready(m, block->convs[k].conv.weight);
    grad = grad_x;
  }
}

/* The decoder has written the gradients of f1..f5 (blocks 1..4's outputs, the last pool's). */
void vgg_encoder_backward(unet *m, vgg_encoder *v) {
  const backend *be = m->be;
  const tensor *next_grad = &v->grad_final_pooled;
  for (int b = VGG_BLOCKS - 1; b >= 0; b--) {
    vgg_block *block = &v->blocks[b];
    /* the gradient through the pool after this block joins the skip's (block 0 has no skip) */
    tensor *unpooled = b > 0 ? &block->grad_unpooled : &block->grad_out;
    be->maxpool_backward(&v->pool, block_output(block), next_grad, unpooled);
    if (b > 0) be->add(&block->grad_out, unpooled, &block->grad_out);
    vgg_block_backward(m, block, b > 0 ? &block->pooled : &m->input,
                       b > 0 ? &block->grad_pooled : NULL);
    next_grad = &block->grad_pooled;
  }
  grads_ready(m, 0);
}
