/* Shared by the model's files (unet_build.c, unet.c, encoder_resnet.c, encoder_vgg.c), not
 * above src/model: registering parameters and activations, the conv(+BN)(+ReLU) unit's forward
 * and backward, and the encoders' build/forward/backward. */
#ifndef FP_UNET_INTERNAL_H
#define FP_UNET_INTERNAL_H

#include "unet.h"

/* out = prefix + suffix, aborting if the name does not fit */
void name_join(char *out, const char *prefix, const char *suffix);
/* Gives t its shape and records it; memory comes when the model is allocated. */
void add_activation(unet *m, tensor *t, activation_kind kind, const tensor *alias_of, int c, int h,
                    int w);
void conv_layer_init(unet *m, conv_layer *layer, const char *name, conv_desc desc, int has_bias);
/* Registers the parameter tensor `name`; returns its offset in params/grads. */
size_t param_add(unet *m, const char *name, int ndims, const int *dims);
/* name.weight, name.bias (parameters) and name.running_mean, name.running_var (buffers) */
void bn_layer_init(unet *m, bn_layer *bn, const char *name, int channels);

/* Batch norm of x into y (may alias x), with the batch's statistics (the global batch's under
 * synchronized BN) when training, the running ones otherwise. */
void batch_norm_forward(unet *m, bn_layer *bn, const tensor *x, tensor *y, int training);
/* grad_x (overwritten) from grad_y; marks gamma's and beta's gradients final. */
void batch_norm_backward(unet *m, bn_layer *bn, const tensor *x, const tensor *grad_y,
                         tensor *grad_x);

typedef struct conv_bn_spec {
  int out_channels, kernel, stride;
  int conv_bias; /* the convolution has a bias (VGG) */
  int relu;
  int kept; /* the output is a feature read later (its own buffer in either mode) */
} conv_bn_spec;
/* bn_name NULL: no batch norm. Padding is kernel / 2. */
void conv_bn_init(unet *m, conv_bn *u, const char *conv_name, const char *bn_name, const tensor *x,
                  conv_bn_spec spec);

void conv_bn_forward(unet *m, conv_bn *u, const tensor *x, int training);
/* Inference models (unet.folded): u->out = relu?(conv(x) with the BN folded in + residual);
 * residual may be NULL. */
void conv_bn_forward_fused(unet *m, conv_bn *u, const tensor *x, const tensor *residual, int relu);
/* grad_out is consumed (ReLU backward runs in place on it); grad_x may be NULL when the input
 * needs no gradient. Marks the unit's parameter gradients final. */
void conv_bn_backward(unet *m, conv_bn *u, const tensor *x, tensor *grad_out, tensor *grad_x);
/* Marks the gradient of the parameter tensor at `offset` (`count` of them in a row) final. */
void mark_grads_final(unet *m, size_t offset);
/* Every gradient at offsets >= final_from is final: checks it, then lets data-parallel training
 * start their all-reduce. */
void grads_ready(unet *m, size_t final_from);

/* The encoders: build registers parameters and activations and sets enc->features and
 * enc->feature_grads; backward reads feature_grads (as the decoder left them). */
void resnet_encoder_build(unet *m, encoder *enc);
void resnet_encoder_forward(unet *m, resnet_encoder *r, int training);
void resnet_encoder_backward(unet *m, resnet_encoder *r);
void resnet_encoder_release(resnet_encoder *r);
void vgg_encoder_build(unet *m, encoder *enc);
void vgg_encoder_forward(unet *m, vgg_encoder *v, int training);
void vgg_encoder_backward(unet *m, vgg_encoder *v);

/* The Extended U-Net's branches (branches.c): build registers their parameters and
 * activations (between the encoder's and the decoder's); forward runs them on f5 and fills
 * br.injected; backward (after the decoder's, which left the injection's gradient in
 * br.grad_injected) adds their gradient w.r.t. f5 to the encoder's feature_grads[4]. */
void branches_build(unet *m, const unet_config *config);
void branches_forward(unet *m, int training);
void branches_backward(unet *m);
void branches_release(unet *m);

#endif
