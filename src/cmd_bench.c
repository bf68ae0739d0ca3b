/* bench: training-step and inference throughput on synthetic data. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "optim.h"
#include "progress.h"
#include "rng.h"
#include "unet.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: bench [--arch r18|r34] [--height H] [--width W] [--batch B] [--threads T]\n"
          "             [--classes K] [--warmup N] [--steps N] [--infer-batches N]\n"
          "Times training steps (forward, weighted cross-entropy, backward, AdamW) and\n"
          "inference batches (eval-mode forward, argmax) of the U-Net on synthetic data and\n"
          "prints one line: engine=c ... train_img_s=<x> infer_img_s=<y>\n"
          "Defaults: r34 288x192, batch 8, 59 classes, 2 warm-up steps, 5 timed steps,\n"
          "5 inference batches, threads = all cores.\n");
}

int main(int argc, char **argv) {
  const char *arch_name = "r34";
  int height = 288, width = 192, batch = 8, threads = 0, classes = 59;
  int warmup = 2, steps = 5, infer_batches = 5;
  cli_option options[] = {
      {"--arch", CLI_STRING, &arch_name, 0, 0},   {"--height", CLI_INT, &height, 32, 8192},
      {"--width", CLI_INT, &width, 32, 8192},     {"--batch", CLI_INT, &batch, 1, 4096},
      {"--threads", CLI_INT, &threads, 0, 1024},  {"--classes", CLI_INT, &classes, 2, 255},
      {"--warmup", CLI_INT, &warmup, 0, 1000},    {"--steps", CLI_INT, &steps, 1, 100000},
      {"--infer-batches", CLI_INT, &infer_batches, 1, 100000},
  };
  if (cli_parse(argc, argv, options, sizeof options / sizeof options[0], usage) != argc) {
    usage(stderr);
    return 2;
  }
  unet_arch arch;
  if (unet_arch_parse(arch_name, &arch) != 0) {
    fprintf(stderr, "bench: --arch must be r18 or r34, not '%s'\n", arch_name);
    return 2;
  }
  if (threads > 0) omp_set_num_threads(threads);

  const backend *be = backend_cpu();
  unet *m = unet_create(be, arch, classes, batch, height, width, 1);
  size_t input_count = tensor_count(&m->input), pixels = (size_t)batch * height * width;
  float *input = fp_malloc(input_count * sizeof(float));
  uint8_t *labels = be->alloc(pixels);
  uint8_t *predictions = be->alloc(pixels);
  float *class_weights = be->alloc((size_t)classes * sizeof(float));
  rng r;
  rng_seed(&r, 7);
  for (size_t i = 0; i < input_count; i++) input[i] = (float)rng_normal(&r);
  for (size_t i = 0; i < pixels; i++) labels[i] = (uint8_t)(rng_next(&r) % (uint64_t)classes);
  for (int k = 0; k < classes; k++) class_weights[k] = k == 0 ? 1.0f : 2.0f;
  be->tensor_from_nchw(&m->input, input);

  adam_config adam = {0.0f, 0.9f, 0.999f, 1e-8f, 1e-4f, 1};
  schedule_config schedule = {1e-3, 0.1, warmup + steps};
  optimizer *opt = optimizer_create(be, m->param_list.total, adam, schedule, 1.0);
  double train_seconds = 0.0;
  for (int s = 0; s < warmup + steps; s++) {
    double start = progress_now();
    unet_forward(m, 1);
    be->softmax_cross_entropy(&m->logits, labels, class_weights, 255, &m->grad_logits);
    unet_backward(m);
    optimizer_step(opt, m->params, m->grads);
    if (s >= warmup) train_seconds += progress_now() - start;
  }
  double infer_seconds = 0.0;
  for (int b = 0; b < 1 + infer_batches; b++) {
    double start = progress_now();
    unet_forward(m, 0);
    be->argmax_channels(&m->logits, predictions);
    if (b >= 1) infer_seconds += progress_now() - start;
  }
  double train_img_s = (double)batch * steps / train_seconds;
  double infer_img_s = (double)batch * infer_batches / infer_seconds;
  printf("engine=c arch=%s height=%d width=%d batch=%d threads=%d train_img_s=%.3f "
         "infer_img_s=%.3f train_step_s=%.3f infer_batch_s=%.3f reference_primitives=%d\n",
         arch_name, height, width, batch, omp_get_max_threads(), train_img_s, infer_img_s,
         train_seconds / steps, infer_seconds / infer_batches, be->reference_primitive_count());
  optimizer_destroy(opt);
  be->release(labels);
  be->release(predictions);
  be->release(class_weights);
  free(input);
  unet_destroy(m);
  return 0;
}
