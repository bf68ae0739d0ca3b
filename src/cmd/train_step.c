#include "train_step.h"

#include <string.h>

#include "check.h"
#include "hash.h"

void train_step_init(train_step *s, unet *m, long dropout_offset) {
  memset(s, 0, sizeof *s);
  const backend *be = m->be;
  s->model = m;
  s->dropout_offset = dropout_offset;
  s->pixels = (size_t)m->batch * m->height * m->width;
  s->labels = be->alloc(FP_U8, s->pixels);
  s->predictions = be->alloc(FP_U8, s->pixels);
  s->host_masks = be->host_alloc(s->pixels);
  s->host_predictions = be->host_alloc(s->pixels);
}

void train_step_bind(train_step *s, optimizer *opt, train_loss *loss, data_parallel *dp,
                     int graphs) {
  FP_CHECK(loss->spec.labels == s->labels,
           "train step: the loss reads labels the step never fills");
  s->opt = opt;
  s->loss = loss;
  s->dp = dp;
  pass_graph_init(&s->graph, "training step", s->model, graphs);
}

void train_step_free(train_step *s) {
  const backend *be = s->model->be;
  pass_graph_release(&s->graph, s->model);
  be->release(s->labels);
  be->release(s->predictions);
  be->host_release(s->host_masks);
  be->host_release(s->host_predictions);
}

/* Everything the step queues on the device and nothing else: what a device graph records. */
static void training_pass(unet *m, void *ctx) {
  train_step *s = ctx;
  unet_forward(m, 1);
  unet_loss(m, &s->loss->spec, 1);
  m->be->argmax_channels(&m->logits, s->predictions, NULL);
  unet_backward(m);
  if (s->dp) data_parallel_finish(s->dp);
  optimizer_apply(s->opt, m);
}

/* Every host value the pass hands its ops: the optimiser's (clipping, loss scale, frozen
 * layers) and the loss's loss scale (the per-step term scales are read from device memory). */
static uint64_t pass_key(const train_step *s) {
  float loss_scale = s->loss->spec.loss_scale;
  uint64_t parts[2] = {optimizer_graph_key(s->opt, s->model),
                       fnv1a64(&loss_scale, sizeof loss_scale)};
  return fnv1a64(parts, sizeof parts);
}

int train_step_queue(train_step *s, const loader_batch *batch, int slot, int stop_requested,
                     double *lr) {
  unet *m = s->model;
  const backend *be = m->be;
  FP_CHECK(s->opt, "train step: queued before train_step_bind");
  be->tensor_from_staged(&m->input, slot);
  memcpy(s->host_masks, batch->masks, s->pixels);
  be->upload(s->labels, s->host_masks, FP_U8, s->pixels);
  unet_set_dropout_draw(m, (uint64_t)s->opt->step, s->dropout_offset);
  int stop =
      train_loss_prepare(s->loss, m, batch->masks, batch->tags, batch->tag_only, stop_requested);
  s->loss->spec.loss_scale = (float)s->opt->scaler.scale;
  *lr = optimizer_prepare_step(s->opt, m);
  unet_run_pass(m, &s->graph, pass_key(s), training_pass, s);
  s->graph_steps += pass_graph_active(&s->graph);
  be->download_async(s->host_predictions, s->predictions, FP_U8, s->pixels, 0);
  return stop;
}

void train_step_wait(train_step *s, confusion *conf, double scalars[SCALAR_COUNT]) {
  s->model->be->download_wait(0);
  confusion_add(conf, s->host_masks, s->host_predictions, s->pixels, s->loss->spec.ignore_label);
  unet_read_scalars(s->model, scalars);
}
