/* Device graphs (pass_graph.h): a pass replayed from a recorded graph computes what the same
 * pass computes run eagerly, batch after batch with new inputs written into the same buffers,
 * and a new key (here a new loss scale) records the pass again rather than replaying the old
 * host arguments.
 *  - inference: forward, argmax and confidence over 4 batches; logits, predictions and
 *    confidences bit for bit the eager run's; before the third, a larger model runs once, which
 *    grows the backend's workspaces: the graph recorded before is then stale and recorded again;
 *  - training: train's pass (forward, loss, argmax, backward, gradient norm and AdamW) over 7
 *    steps, the input staged (stage_input) before each replay, the loss scale 1 for 4 steps
 *    then 4 (key change): every step's loss and gradient norm (within 1e-5 relative) and
 *    predictions (at most 0.1 % of pixels differing), and at the end the weights and Adam
 *    moments (1e-5), against a second model with the same seed run eagerly with the plain
 *    upload (bit for bit where the backend's reductions are deterministic).
 * Both for the plain U-Net and the Extended U-Net (branches injected into two decoder blocks;
 * training with the class branch's dropout, whose mask is drawn anew each step, and new branch
 * targets each step; inference once with the ground truth injected, a new key).
 * On a backend with graphs the graph must have been used (else the test fails: a silent
 * fallback to eager would prove nothing); on the CPU the same comparisons check the eager
 * fallback, for the plain U-Net only (the Extended U-Net's eager passes are the twins'). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "optim.h"
#include "pass_graph.h"
#include "rng.h"
#include "test_backend.h"
#include "unet.h"

typedef struct pass_data {
  uint8_t *labels, *predictions; /* backend memory */
  float *class_weights, *confidence;
  const optimizer *opt;
} pass_data;

static void inference_pass(unet *m, void *ctx) {
  const pass_data *d = ctx;
  unet_forward(m, 0);
  m->be->argmax_channels(&m->logits, d->predictions, d->confidence);
}

/* train's pass (src/cmd/train_step.c): forward, loss, argmax, backward, update */
static void training_pass(unet *m, void *ctx) {
  const pass_data *d = ctx;
  loss_spec spec = {.labels = d->labels,
                    .class_weights = d->class_weights,
                    .ignore_label = 255,
                    .class_loss_weight = 1.0f,
                    .box_loss_weight = 5.0f,
                    .loss_scale = (float)d->opt->scaler.scale};
  unet_forward(m, 1);
  unet_loss(m, &spec, 1);
  m->be->argmax_channels(&m->logits, d->predictions, NULL);
  unet_backward(m);
  optimizer_apply(d->opt, m);
}

static pass_data pass_data_create(const backend *be, const unet *m) {
  size_t pixels = (size_t)m->batch * m->height * m->width;
  pass_data d = {.labels = be->alloc(FP_U8, pixels),
                 .predictions = be->alloc(FP_U8, pixels),
                 .class_weights = be->alloc(FP_F32, (size_t)m->classes),
                 .confidence = be->alloc(FP_F32, pixels)};
  float weights[16];
  for (int k = 0; k < m->classes; k++) weights[k] = k == 0 ? 0.5f : 1.0f + 0.25f * (float)k;
  be->upload(d.class_weights, weights, FP_F32, (size_t)m->classes);
  return d;
}

static void pass_data_free(const backend *be, pass_data *d) {
  be->release(d->labels);
  be->release(d->predictions);
  be->release(d->class_weights);
  be->release(d->confidence);
}

static void random_batch(const unet *m, rng *r, float *input, uint8_t *labels) {
  size_t input_count = tensor_count(&m->input), pixels = (size_t)m->batch * m->height * m->width;
  for (size_t i = 0; i < input_count; i++) input[i] = (float)rng_normal(r);
  for (size_t i = 0; labels && i < pixels; i++)
    labels[i] = (uint8_t)(rng_next(r) % (uint64_t)m->classes);
}

/* The Extended U-Net's per-step targets, drawn on the host once for both models (presence [k],
 * boxes [4k]); branch_inputs uploads them and the step's dropout draw, outside the pass. */
static void draw_branch_targets(rng *r, float *presence, float *boxes, size_t k) {
  for (size_t i = 0; i < k; i++) presence[i] = (float)(rng_next(r) % 2);
  for (size_t i = 0; i < 4 * k; i++) boxes[i] = (float)rng_uniform(r);
}

static void branch_inputs(unet *m, const float *presence, const float *boxes, int step) {
  if (m->br.mode == BRANCHES_NONE) return;
  unet_set_branch_targets(m, presence, boxes, NULL);
  unet_set_dropout_draw(m, (uint64_t)step, 0);
}

static const char *model_name(const unet_config *config) {
  return config->branches.mode == BRANCHES_NONE ? "U-Net" : "Extended U-Net";
}

/* 0 when the graph was used where the backend has graphs, or the backend has none */
static int graph_use_failures(const backend *be, const pass_graph *g) {
  if (!be->capture_begin) {
    printf("  (no device graphs on the %s backend: the eager fallback checked)\n", be->name);
    return 0;
  }
  if (pass_graph_active(g)) return 0;
  printf("  FAIL: the %s backend has graphs but the pass ran eagerly: %s\n", be->name, g->why);
  return 1;
}

/* A forward pass of a model 4 times larger, with the same layers: every workspace grows. */
static void grow_workspaces(const backend *be, const unet_config *config) {
  unet_config larger = *config;
  larger.height *= 2;
  larger.width *= 2;
  unet *m = unet_create(be, &larger, 1);
  unet_forward(m, 0);
  unet_destroy(m);
}

static int check_inference(const backend *be, fp_dtype compute, branch_config branches) {
  unet_config config = {.arch = UNET_R18,
                        .classes = 7,
                        .batch = 2,
                        .height = 64,
                        .width = 96,
                        .compute = compute,
                        .mode = UNET_INFERENCE,
                        .branches = branches};
  unet *m = unet_create(be, &config, 11);
  pass_data d = pass_data_create(be, m);
  size_t input_count = tensor_count(&m->input), logit_count = tensor_count(&m->logits);
  size_t pixels = (size_t)m->batch * m->height * m->width;
  float *input = fp_malloc(input_count * sizeof *input);
  float *logits[2], *confidence[2];
  uint8_t *predictions[2];
  for (int v = 0; v < 2; v++) {
    logits[v] = fp_malloc(logit_count * sizeof *logits[v]);
    confidence[v] = fp_malloc(pixels * sizeof *confidence[v]);
    predictions[v] = fp_malloc(pixels);
  }
  pass_graph graph;
  pass_graph_init(&graph, "test inference batch", m, 1);
  rng r;
  rng_seed(&r, 21);
  float presence[2 * 7];
  for (int i = 0; i < 2 * 7; i++) presence[i] = (float)(i % 3 == 0);
  int failures = 0, batches = branches.mode == BRANCHES_NONE ? 4 : 6;
  for (int batch = 0; batch < batches; batch++) {
    if (batch == 2) grow_workspaces(be, &config);
    if (batch == 4) unet_inject_ground_truth(m, presence); /* a new key, until the end */
    random_batch(m, &r, input, NULL);
    for (int v = 0; v < 2; v++) { /* v = 0: eager, 1: through the graph */
      be->tensor_from_nchw(&m->input, input);
      if (v == 0)
        inference_pass(m, &d);
      else
        unet_run_pass(m, &graph, 0, inference_pass, &d);
      be->tensor_to_nchw(&m->logits, logits[v]);
      be->download(predictions[v], d.predictions, FP_U8, pixels);
      be->download(confidence[v], d.confidence, FP_F32, pixels);
    }
    int same = !memcmp(logits[0], logits[1], logit_count * sizeof *logits[0]) &&
               !memcmp(predictions[0], predictions[1], pixels) &&
               !memcmp(confidence[0], confidence[1], pixels * sizeof *confidence[0]);
    printf("  %s inference %s batch %d%s (%s): %s\n", model_name(&config), fp_dtype_name(compute),
           batch, batch >= 4 ? ", ground truth injected" : "",
           pass_graph_active(&graph) ? "graph" : "eager", same ? "identical" : "FAIL: differs");
    failures += !same;
  }
  failures += graph_use_failures(be, &graph);
  pass_graph_release(&graph, m);
  for (int v = 0; v < 2; v++) {
    free(logits[v]);
    free(confidence[v]);
    free(predictions[v]);
  }
  free(input);
  pass_data_free(be, &d);
  unet_destroy(m);
  return failures;
}

static double relative_difference(const backend *be, const float *a, const float *b, size_t n) {
  float *ha = fp_malloc(n * sizeof *ha), *hb = fp_malloc(n * sizeof *hb);
  be->download(ha, a, FP_F32, n);
  be->download(hb, b, FP_F32, n);
  double largest = 0.0, difference = 0.0;
  for (size_t i = 0; i < n; i++) {
    largest = fmax(largest, fabs(ha[i]));
    double d = fabs((double)ha[i] - hb[i]);
    difference = d > difference || d != d ? d : difference;
  }
  free(ha);
  free(hb);
  return largest > 0 ? difference / largest : difference;
}

static int close_enough(double difference) {
  return difference <= 1e-5;
}

static int check_training(const backend *be, fp_dtype compute, branch_config branches) {
  unet_config config = {.arch = UNET_R18,
                        .classes = 5,
                        .batch = 2,
                        .height = 64,
                        .width = 64,
                        .compute = compute,
                        .mode = UNET_TRAINING,
                        .branches = branches};
  unet *models[2] = {unet_create(be, &config, 5), unet_create(be, &config, 5)};
  adam_config adam = {0.9f, 0.999f, 1e-2f, 1e-4f, 1};
  schedule_config schedule = {1e-3, 0.3, 7};
  optimizer *opts[2];
  pass_data data[2];
  for (int v = 0; v < 2; v++) {
    opts[v] = optimizer_create(be, models[v]->param_list.total, adam, schedule, 1.0);
    data[v] = pass_data_create(be, models[v]);
    data[v].opt = opts[v];
  }
  pass_graph graph;
  pass_graph_init(&graph, "test training step", models[1], 1);
  size_t pixels = (size_t)models[0]->batch * models[0]->height * models[0]->width;
  size_t input_count = tensor_count(&models[0]->input);
  float *input = be->host_alloc(input_count * sizeof *input);
  uint8_t *labels = fp_malloc(pixels), *predictions[2] = {fp_malloc(pixels), fp_malloc(pixels)};
  size_t k = (size_t)config.batch * config.classes;
  float *presence = fp_malloc(k * sizeof *presence), *boxes = fp_malloc(4 * k * sizeof *boxes);
  rng r;
  rng_seed(&r, 8);
  int failures = 0;
  for (int step = 0; step < 7; step++) {
    be->stage_wait(0);
    random_batch(models[0], &r, input, labels);
    if (branches.mode != BRANCHES_NONE) draw_branch_targets(&r, presence, boxes, k);
    double scalars[2][SCALAR_COUNT];
    for (int v = 0; v < 2; v++) { /* v = 0: eager, 1: staged input and through the graph */
      unet *m = models[v];
      branch_inputs(m, presence, boxes, step);
      opts[v]->scaler.scale = step < 4 ? 1.0 : 4.0;
      if (v == 0) {
        be->tensor_from_nchw(&m->input, input);
      } else {
        be->stage_input(0, input, input_count);
        be->tensor_from_staged(&m->input, 0);
      }
      be->upload(data[v].labels, labels, FP_U8, pixels);
      optimizer_prepare_step(opts[v], m);
      if (v == 0)
        training_pass(m, &data[v]);
      else
        unet_run_pass(m, &graph, optimizer_graph_key(opts[v], m), training_pass, &data[v]);
      unet_read_scalars(m, scalars[v]);
      be->download(predictions[v], data[v].predictions, FP_U8, pixels);
    }
    double loss =
        fabs(scalars[1][SCALAR_LOSS] - scalars[0][SCALAR_LOSS]) / fabs(scalars[0][SCALAR_LOSS]);
    double norm = fabs(scalars[1][SCALAR_GRAD_NORM] - scalars[0][SCALAR_GRAD_NORM]) /
                  fabs(scalars[0][SCALAR_GRAD_NORM]);
    size_t moved = 0; /* argmax near-ties may flip once the weights differ by rounding */
    for (size_t i = 0; i < pixels; i++) moved += predictions[0][i] != predictions[1][i];
    int ok = close_enough(loss) && close_enough(norm) && moved * 1000 <= pixels;
    printf("  %s training %s step %d, loss scale %g (%s): loss %.6f, relative differences: "
           "loss %.2e, gradient norm %.2e; predictions differing: %zu of %zu: %s\n",
           model_name(&config), fp_dtype_name(compute), step, opts[1]->scaler.scale,
           pass_graph_active(&graph) ? "graph" : "eager", scalars[0][SCALAR_LOSS], loss, norm,
           moved, pixels, ok ? "ok" : "FAIL");
    failures += !ok;
  }
  size_t n = models[0]->param_list.total;
  double params = relative_difference(be, models[0]->params, models[1]->params, n);
  double first = relative_difference(be, opts[0]->exp_avg, opts[1]->exp_avg, n);
  double second = relative_difference(be, opts[0]->exp_avg_sq, opts[1]->exp_avg_sq, n);
  int ok = close_enough(params) && close_enough(first) && close_enough(second);
  printf("  %s training %s after 7 steps, relative differences: weights %.2e, exp_avg %.2e, "
         "exp_avg_sq %.2e: %s\n",
         model_name(&config), fp_dtype_name(compute), params, first, second, ok ? "ok" : "FAIL");
  failures += !ok + graph_use_failures(be, &graph);
  pass_graph_release(&graph, models[1]);
  be->stage_wait(0);
  be->host_release(input);
  free(labels);
  free(presence);
  free(boxes);
  for (int v = 0; v < 2; v++) {
    free(predictions[v]);
    pass_data_free(be, &data[v]);
    optimizer_destroy(opts[v]);
    unet_destroy(models[v]);
  }
  return failures;
}

int main(void) {
  const backend *be = test_backend();
  int failures = 0;
  fp_dtype precisions[2] = {FP_F32, FP_BF16};
  branch_config models[2] = {{BRANCHES_NONE, 0, 0.0f}, {BRANCHES_INJECTED, 0x5, 0.25f}};
  for (int p = 0; p < 2; p++) {
    if (!test_precision_runs(be, precisions[p])) continue;
    for (int k = 0; k < (be->capture_begin ? 2 : 1); k++) {
      failures += check_inference(be, precisions[p], models[k]);
      failures += check_training(be, precisions[p], models[k]);
    }
  }
  printf("%s\n", failures ? "FAILED" : "all passes through graphs match the eager passes");
  return failures ? 1 : 0;
}
