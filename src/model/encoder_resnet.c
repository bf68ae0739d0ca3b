/* The ResNet18/34 encoder (torchvision's names, without avgpool and fc): stem conv 7x7/2 + BN +
 * ReLU, max pool 3x3/2, then four stages of basic blocks. */
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "unet_internal.h"

static const int stage_channels[4] = {64, 128, 256, 512};

static const int *stage_block_counts(unet_arch arch) {
  static const int r18[4] = {2, 2, 2, 2}, r34[4] = {3, 4, 6, 3};
  return arch == UNET_R18 ? r18 : r34;
}

static void basic_block_init(unet *m, basic_block *b, const char *name, const tensor *x,
                             int out_channels, int stride, int output_kept) {
  char conv[NAMED_TENSOR_NAME_MAX], bn[NAMED_TENSOR_NAME_MAX];
  name_join(conv, name, ".conv1");
  name_join(bn, name, ".bn1");
  conv_bn_init(m, &b->conv1, conv, bn, x, (conv_bn_spec){out_channels, 3, stride, 0, 1, 0});
  name_join(conv, name, ".conv2");
  name_join(bn, name, ".bn2");
  conv_bn_init(m, &b->conv2, conv, bn, &b->conv1.out,
               (conv_bn_spec){out_channels, 3, 1, 0, 0, output_kept});
  b->has_downsample = stride != 1 || x->c != out_channels;
  if (b->has_downsample) {
    name_join(conv, name, ".downsample.0");
    name_join(bn, name, ".downsample.1");
    conv_bn_init(m, &b->downsample, conv, bn, x, (conv_bn_spec){out_channels, 1, stride, 0, 0, 0});
    add_activation(m, &b->grad_identity, ACTIVATION_GRADIENT, NULL, x->c, x->h, x->w);
  }
  const tensor *y = &b->conv2.out;
  add_activation(m, &b->grad_mid, ACTIVATION_GRADIENT, NULL, out_channels, y->h, y->w);
  add_activation(m, &b->grad_out, ACTIVATION_GRADIENT, NULL, out_channels, y->h, y->w);
}

static basic_block *last_block(resnet_encoder *r, int stage) {
  return &r->stages[stage].blocks[r->stages[stage].block_count - 1];
}

void resnet_encoder_build(unet *m, encoder *enc) {
  resnet_encoder *r = &enc->resnet;
  conv_bn_init(m, &r->stem, "encoder.conv1", "encoder.bn1", &m->input,
               (conv_bn_spec){64, 7, 2, 0, 1, 1});
  const tensor *stem = &r->stem.out;
  add_activation(m, &r->grad_stem_out, ACTIVATION_GRADIENT, NULL, 64, stem->h, stem->w);
  add_activation(m, &r->grad_stem_pool, ACTIVATION_GRADIENT, NULL, 64, stem->h, stem->w);
  r->pool = (pool_desc){3, 2, 1};
  add_activation(m, &r->pooled, ACTIVATION_TRANSIENT, NULL, 64, stem->h / 2, stem->w / 2);
  add_activation(m, &r->grad_pooled, ACTIVATION_GRADIENT, NULL, 64, stem->h / 2, stem->w / 2);

  const int *counts = stage_block_counts(m->arch);
  const tensor *x = &r->pooled;
  for (int s = 0; s < 4; s++) {
    encoder_stage *stage = &r->stages[s];
    stage->block_count = counts[s];
    stage->blocks = fp_calloc((size_t)counts[s], sizeof *stage->blocks);
    if (s > 0) add_activation(m, &stage->grad_input, ACTIVATION_GRADIENT, NULL, x->c, x->h, x->w);
    for (int b = 0; b < counts[s]; b++) {
      char name[NAMED_TENSOR_NAME_MAX];
      snprintf(name, sizeof name, "encoder.layer%d.%d", s + 1, b);
      int skip_feature = s < 3 && b == counts[s] - 1; /* layer1..3 outputs feed the decoder */
      basic_block_init(m, &stage->blocks[b], name, x, stage_channels[s], (b == 0 && s > 0) ? 2 : 1,
                       skip_feature);
      x = &stage->blocks[b].conv2.out;
    }
  }
  enc->features[0] = &r->stem.out;
  enc->feature_grads[0] = &r->grad_stem_out;
  for (int s = 0; s < 4; s++) {
    enc->features[s + 1] = &last_block(r, s)->conv2.out;
    enc->feature_grads[s + 1] = &last_block(r, s)->grad_out;
  }
}

/* The downsample runs before conv2, whose epilogue adds it: the ring's four slots still hold
 * the block's input, conv1's output and the downsample's while conv2 writes the fourth. */
static const tensor *basic_block_forward_folded(unet *m, basic_block *b, const tensor *x) {
  conv_bn_forward_fused(m, &b->conv1, x, NULL, 1);
  const tensor *identity = x;
  if (b->has_downsample) {
    conv_bn_forward_fused(m, &b->downsample, x, NULL, 0);
    identity = &b->downsample.out;
  }
  conv_bn_forward_fused(m, &b->conv2, &b->conv1.out, identity, 1);
  return &b->conv2.out;
}

static const tensor *basic_block_forward(unet *m, basic_block *b, const tensor *x, int training) {
  if (m->folded.enabled) return basic_block_forward_folded(m, b, x);
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

void resnet_encoder_forward(unet *m, resnet_encoder *r, int training) {
  conv_bn_forward(m, &r->stem, &m->input, training);
  m->be->maxpool_forward(&r->pool, &r->stem.out, &r->pooled);
  const tensor *x = &r->pooled;
  for (int s = 0; s < 4; s++)
    for (int b = 0; b < r->stages[s].block_count; b++)
      x = basic_block_forward(m, &r->stages[s].blocks[b], x, training);
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

/* The decoder has written the gradients of f1..f5 (the stem's and each stage's output). */
void resnet_encoder_backward(unet *m, resnet_encoder *r) {
  const backend *be = m->be;
  for (int s = 3; s >= 0; s--) {
    encoder_stage *stage = &r->stages[s];
    for (int b = stage->block_count - 1; b >= 0; b--) {
      const tensor *x;
      tensor *grad_x;
      if (b > 0) {
        x = &stage->blocks[b - 1].conv2.out;
        grad_x = &stage->blocks[b - 1].grad_out;
      } else if (s > 0) {
        x = &last_block(r, s - 1)->conv2.out;
        grad_x = &stage->grad_input;
      } else {
        x = &r->pooled;
        grad_x = &r->grad_pooled;
      }
      basic_block_backward(m, &stage->blocks[b], x, grad_x);
      grads_ready(m, stage->blocks[b].conv1.conv.weight);
    }
    if (s > 0) {
      tensor *skip_grad = &last_block(r, s - 1)->grad_out;
      be->add(skip_grad, &stage->grad_input, skip_grad);
    }
  }
  be->maxpool_backward(&r->pool, &r->stem.out, &r->grad_pooled, &r->grad_stem_pool);
  be->add(&r->grad_stem_out, &r->grad_stem_pool, &r->grad_stem_out);
  conv_bn_backward(m, &r->stem, &m->input, &r->grad_stem_out, NULL);
  grads_ready(m, 0);
}

void resnet_encoder_release(resnet_encoder *r) {
  for (int s = 0; s < 4; s++) free(r->stages[s].blocks);
}
