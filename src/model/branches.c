/* The Extended U-Net's class and box branches ("Clothing Parsing using Extended U-Net", VISAPP
 * 2021): both read f5's global average and max pools, concatenated. Their outputs, as
 * probabilities, can be injected into the decoder (the decoder's part is in unet.c); the losses
 * are in loss.c. */
#include "branch_targets.h"
#include "check.h"
#include "unet_internal.h"

/* ----------------------------------------------------------------- build */

static void fc_init(unet *m, fc_layer *fc, const char *name, int in, int out) {
  char full[NAMED_TENSOR_NAME_MAX];
  int weight_dims[2] = {out, in};
  fc->in = in;
  fc->out = out;
  name_join(full, name, ".weight");
  fc->weight = param_add(m, full, 2, weight_dims);
  name_join(full, name, ".bias");
  fc->bias = param_add(m, full, 1, &out);
}

static void vector(unet *m, tensor *t, activation_kind kind, int c) {
  add_activation(m, t, kind, NULL, c, 1, 1);
}

static void class_branch_build(unet *m, class_branch *cls, int in) {
  fc_init(m, &cls->fc1, "class_branch.fc1", in, BRANCH_HIDDEN);
  bn_layer_init(m, &cls->bn, "class_branch.bn", BRANCH_HIDDEN);
  fc_init(m, &cls->fc2, "class_branch.fc2", BRANCH_HIDDEN, m->classes);
  tensor *kept[] = {&cls->hidden, &cls->normed, &cls->dropped};
  for (int i = 0; i < 3; i++) vector(m, kept[i], ACTIVATION_KEPT, BRANCH_HIDDEN);
  vector(m, &cls->logits, ACTIVATION_KEPT, m->classes);
  vector(m, &cls->probabilities, ACTIVATION_KEPT, m->classes);
  /* training-only tensors are ACTIVATION_GRADIENT */
  tensor *hidden_grads[] = {&cls->keep_mask, &cls->grad_dropped, &cls->grad_normed,
                            &cls->grad_hidden};
  for (int i = 0; i < 4; i++) vector(m, hidden_grads[i], ACTIVATION_GRADIENT, BRANCH_HIDDEN);
  vector(m, &cls->grad_logits, ACTIVATION_GRADIENT, m->classes);
  vector(m, &cls->grad_probabilities, ACTIVATION_GRADIENT, m->classes);
}

static void box_branch_build(unet *m, box_branch *box, int in) {
  fc_init(m, &box->fc1, "box_branch.fc1", in, BRANCH_HIDDEN);
  fc_init(m, &box->fc2, "box_branch.fc2", BRANCH_HIDDEN, 4 * m->classes);
  vector(m, &box->hidden, ACTIVATION_KEPT, BRANCH_HIDDEN);
  vector(m, &box->logits, ACTIVATION_KEPT, 4 * m->classes);
  vector(m, &box->boxes, ACTIVATION_KEPT, 4 * m->classes);
  vector(m, &box->grad_hidden, ACTIVATION_GRADIENT, BRANCH_HIDDEN);
  vector(m, &box->grad_logits, ACTIVATION_GRADIENT, 4 * m->classes);
  vector(m, &box->grad_boxes, ACTIVATION_GRADIENT, 4 * m->classes);
  vector(m, &box->grad_pooled, ACTIVATION_GRADIENT, 2 * m->enc.features[4]->c);
}

void branches_build(unet *m, const unet_config *config) {
  branches *b = &m->br;
  const branch_config *c = &config->branches;
  b->mode = c->mode;
  if (b->mode == BRANCHES_NONE) return;
  FP_CHECK(c->dropout >= 0.0f && c->dropout < 1.0f, "model: branch dropout %g (0 <= p < 1)",
           c->dropout);
  FP_CHECK(b->mode != BRANCHES_INJECTED || (c->inject_blocks && c->inject_blocks < 32),
           "model: injected branches need decoder blocks (0..4) to inject into");
  b->inject_blocks = b->mode == BRANCHES_INJECTED ? c->inject_blocks : 0;
  b->dropout = c->dropout;
  b->first_param = m->param_list.total;
  const tensor *f5 = m->enc.features[4];
  int pooled = 2 * f5->c, k = m->classes;
  vector(m, &b->average, ACTIVATION_KEPT, f5->c);
  vector(m, &b->maximum, ACTIVATION_KEPT, f5->c);
  vector(m, &b->pooled, ACTIVATION_KEPT, pooled);
  class_branch_build(m, &b->cls, pooled);
  box_branch_build(m, &b->box, pooled);
  vector(m, &b->injected, ACTIVATION_KEPT, 5 * k);
  vector(m, &b->ground_truth, ACTIVATION_KEPT, k);
  vector(m, &b->grad_pooled, ACTIVATION_GRADIENT, pooled);
  vector(m, &b->grad_average, ACTIVATION_GRADIENT, f5->c);
  vector(m, &b->grad_maximum, ACTIVATION_GRADIENT, f5->c);
  vector(m, &b->grad_injected, ACTIVATION_GRADIENT, 5 * k);
  vector(m, &b->grad_injected_block, ACTIVATION_GRADIENT, 5 * k);
  add_activation(m, &b->grad_from_average, ACTIVATION_GRADIENT, NULL, f5->c, f5->h, f5->w);
  add_activation(m, &b->grad_from_maximum, ACTIVATION_GRADIENT, NULL, f5->c, f5->h, f5->w);
  b->target_presence = m->be->alloc(FP_F32, (size_t)m->batch * k);
  b->target_boxes = m->be->alloc(FP_F32, (size_t)m->batch * 4 * k);
  b->target_box_mask = m->be->alloc(FP_F32, (size_t)m->batch * k);
  b->host_keep_mask = fp_calloc((size_t)m->batch * BRANCH_HIDDEN, sizeof *b->host_keep_mask);
}

void branches_release(unet *m) {
  branches *b = &m->br;
  if (b->mode == BRANCHES_NONE) return;
  m->be->release(b->target_presence);
  m->be->release(b->target_boxes);
  m->be->release(b->target_box_mask);
  free(b->host_keep_mask);
}

/* --------------------------------------------------------------- forward */

static void fc_forward(unet *m, const fc_layer *fc, const tensor *x, tensor *y) {
  m->be->inner_product_forward(x, unet_compute_weights(m, fc->weight), m->params + fc->bias, y);
}

static int dropout_active(const branches *b, int training) {
  return training && b->dropout > 0.0f;
}

static void class_branch_forward(unet *m, class_branch *cls, int training) {
  const backend *be = m->be;
  branches *b = &m->br;
  fc_forward(m, &cls->fc1, &b->pooled, &cls->hidden);
  be->relu_forward(&cls->hidden, &cls->hidden);
  batch_norm_forward(m, &cls->bn, &cls->hidden, &cls->normed, training);
  const tensor *features = &cls->normed;
  if (dropout_active(b, training)) { /* the mask unet_set_dropout_draw uploaded */
    be->mul(&cls->normed, &cls->keep_mask, &cls->dropped);
    features = &cls->dropped;
  }
  fc_forward(m, &cls->fc2, features, &cls->logits);
  be->sigmoid_forward(&cls->logits, &cls->probabilities);
}

void branches_forward(unet *m, int training) {
  branches *b = &m->br;
  if (b->mode == BRANCHES_NONE) return;
  FP_CHECK(!training || !b->use_ground_truth,
           "ground-truth injection is for inference; training injects the branch's output");
  const backend *be = m->be;
  const tensor *f5 = m->enc.features[4];
  be->global_avgpool_forward(f5, &b->average);
  be->global_maxpool_forward(f5, &b->maximum);
  be->concat_channels(&b->average, &b->maximum, &b->pooled);
  class_branch_forward(m, &b->cls, training);
  fc_forward(m, &b->box.fc1, &b->pooled, &b->box.hidden);
  be->relu_forward(&b->box.hidden, &b->box.hidden);
  fc_forward(m, &b->box.fc2, &b->box.hidden, &b->box.logits);
  be->sigmoid_forward(&b->box.logits, &b->box.boxes);
  if (b->mode == BRANCHES_INJECTED)
    be->concat_channels(b->use_ground_truth ? &b->ground_truth : &b->cls.probabilities,
                        &b->box.boxes, &b->injected);
}

/* -------------------------------------------------------------- backward */

static void fc_backward(unet *m, const fc_layer *fc, const tensor *x, const tensor *grad_y,
                        tensor *grad_x) {
  m->be->inner_product_backward(x, grad_y, unet_compute_weights(m, fc->weight), grad_x,
                                m->grads + fc->weight, m->grads + fc->bias);
  mark_grads_final(m, fc->weight);
  mark_grads_final(m, fc->bias);
}

/* grad_logits holds the loss's gradient; the injection's (through the sigmoid) is added. */
static void add_injection_gradient(unet *m, const tensor *output, tensor *grad_output,
                                   tensor *grad_logits) {
  m->be->sigmoid_backward(output, grad_output, grad_output);
  m->be->add(grad_logits, grad_output, grad_logits);
}

static void class_branch_backward(unet *m, class_branch *cls) {
  const backend *be = m->be;
  branches *b = &m->br;
  int dropout = dropout_active(b, 1);
  fc_backward(m, &cls->fc2, dropout ? &cls->dropped : &cls->normed, &cls->grad_logits,
              &cls->grad_dropped);
  const tensor *grad_normed = &cls->grad_dropped;
  if (dropout) {
    be->mul(&cls->grad_dropped, &cls->keep_mask, &cls->grad_normed);
    grad_normed = &cls->grad_normed;
  }
  batch_norm_backward(m, &cls->bn, &cls->hidden, grad_normed, &cls->grad_hidden);
  be->relu_backward(&cls->hidden, &cls->grad_hidden, &cls->grad_hidden);
  fc_backward(m, &cls->fc1, &b->pooled, &cls->grad_hidden, &b->grad_pooled);
}

void branches_backward(unet *m) {
  branches *b = &m->br;
  if (b->mode == BRANCHES_NONE) return;
  const backend *be = m->be;
  if (b->mode == BRANCHES_INJECTED) {
    be->split_channels(&b->grad_injected, &b->cls.grad_probabilities, &b->box.grad_boxes);
    add_injection_gradient(m, &b->cls.probabilities, &b->cls.grad_probabilities,
                           &b->cls.grad_logits);
    add_injection_gradient(m, &b->box.boxes, &b->box.grad_boxes, &b->box.grad_logits);
  }
  class_branch_backward(m, &b->cls);
  box_branch *box = &b->box;
  fc_backward(m, &box->fc2, &box->hidden, &box->grad_logits, &box->grad_hidden);
  be->relu_backward(&box->hidden, &box->grad_hidden, &box->grad_hidden);
  fc_backward(m, &box->fc1, &b->pooled, &box->grad_hidden, &box->grad_pooled);
  grads_ready(m, b->first_param);
  if (m->encoder_frozen) return;
  be->add(&b->grad_pooled, &box->grad_pooled, &b->grad_pooled);
  be->split_channels(&b->grad_pooled, &b->grad_average, &b->grad_maximum);
  tensor *grad_f5 = m->enc.feature_grads[4];
  be->global_avgpool_backward(&b->grad_average, &b->grad_from_average);
  be->global_maxpool_backward(m->enc.features[4], &b->grad_maximum, &b->grad_from_maximum);
  be->add(grad_f5, &b->grad_from_average, grad_f5);
  be->add(grad_f5, &b->grad_from_maximum, grad_f5);
}

/* ---------------------------------------------------------------- inputs */

void unet_set_dropout_draw(unet *m, uint64_t step, long first_sample) {
  branches *b = &m->br;
  if (b->mode == BRANCHES_NONE || m->mode != UNET_TRAINING || !(b->dropout > 0.0f)) return;
  dropout_keep_mask(b->dropout_seed, step, first_sample, m->batch, BRANCH_HIDDEN, b->dropout,
                    b->host_keep_mask);
  m->be->tensor_from_nchw(&b->cls.keep_mask, b->host_keep_mask);
}

void unet_inject_ground_truth(unet *m, const float *host_presence) {
  FP_CHECK(m->br.mode == BRANCHES_INJECTED, "ground-truth injection needs injected branches");
  m->br.use_ground_truth = host_presence != NULL;
  if (host_presence) m->be->tensor_from_nchw(&m->br.ground_truth, host_presence);
}

void unet_set_branch_targets(unet *m, const float *presence, const float *boxes,
                             const float *box_mask) {
  FP_CHECK(m->br.mode != BRANCHES_NONE, "branch targets for a model without branches");
  size_t k = (size_t)m->batch * m->classes;
  m->be->upload(m->br.target_presence, presence, FP_F32, k);
  m->be->upload(m->br.target_boxes, boxes, FP_F32, 4 * k);
  m->be->upload(m->br.target_box_mask, box_mask ? box_mask : presence, FP_F32, k);
}
