/* bench: training-step and inference throughput on synthetic data. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "optim.h"
#include "pass_graph.h"
#include "progress.h"
#include "rng.h"
#include "runtime.h"
#include "unet.h"

static void usage(FILE *out) {
  fprintf(out, "usage: bench [--arch " UNET_ARCH_WORDS
               "] [--height H] [--width W] [--batch B] [--threads T]\n"
               "             [--classes K] [--warmup N] [--steps N] [--infer-batches N]\n"
               "             [--backend auto|cpu|cuda] [--precision auto|fp32|bf16|fp16]\n"
               "             [--graphs 0|1] [--fold 0|1]\n"
               "Times training steps (forward, weighted cross-entropy, backward, AdamW) of a\n"
               "training model and inference batches (forward, argmax) of an inference-only model\n"
               "of the U-Net on synthetic data and prints one line:\n"
               "  engine=c ... precision=<fp32|bf16|fp16> train_img_s=<x> infer_img_s=<y> ...\n"
               "Defaults: r34 288x192, batch 8, 59 classes, 2 warm-up steps, 5 timed steps,\n"
               "5 inference batches, threads = all cores, backend auto (cuda when built in and a\n"
               "GPU is visible), precision auto (bf16 where the CPU has AMX-BF16 or is an AMD one\n"
               "with AVX512-BF16, or the GPU has bf16 Tensor Cores, else fp32; the reason goes\n"
               "to stderr). Each step ends by reading\n"
               "its scalars back and each inference batch by copying its predictions to the host,\n"
               "as train and parse_catalog do, so device backends are timed to completion.\n"
               "--graphs 1 (default): on a device backend, each step and each batch after the\n"
               "first is replayed as a device graph (CUDA graph); graphs=T/I in the line says\n"
               "whether the timed training steps / inference batches were (0 on the CPU).\n"
               "--fold 1 (default): the inference model folds batch norm into the convolutions\n"
               "and fuses bias, residual add and ReLU into them, as evaluate and parse_catalog\n"
               "do; 0 runs them as separate ops (fold=<0|1> in the line).\n");
}

typedef struct bench_data {
  float *host_input;
  uint8_t *labels, *predictions; /* backend memory */
  uint8_t *host_predictions;
  float *class_weights; /* backend memory */
} bench_data;

static bench_data bench_data_create(const backend *be, const unet *m) {
  bench_data d;
  size_t input_count = tensor_count(&m->input), pixels = (size_t)m->batch * m->height * m->width;
  d.host_input = fp_malloc(input_count * sizeof *d.host_input);
  uint8_t *host_labels = fp_malloc(pixels);
  float *host_weights = fp_malloc((size_t)m->classes * sizeof *host_weights);
  rng r;
  rng_seed(&r, 7);
  for (size_t i = 0; i < input_count; i++) d.host_input[i] = (float)rng_normal(&r);
  for (size_t i = 0; i < pixels; i++)
    host_labels[i] = (uint8_t)(rng_next(&r) % (uint64_t)m->classes);
  for (int k = 0; k < m->classes; k++) host_weights[k] = k == 0 ? 1.0f : 2.0f;
  d.labels = be->alloc(FP_U8, pixels);
  d.predictions = be->alloc(FP_U8, pixels);
  d.host_predictions = fp_malloc(pixels);
  d.class_weights = be->alloc(FP_F32, (size_t)m->classes);
  be->upload(d.labels, host_labels, FP_U8, pixels);
  be->upload(d.class_weights, host_weights, FP_F32, (size_t)m->classes);
  free(host_labels);
  free(host_weights);
  return d;
}

static void bench_data_free(const backend *be, bench_data *d) {
  free(d->host_input);
  free(d->host_predictions);
  be->release(d->labels);
  be->release(d->predictions);
  be->release(d->class_weights);
}

typedef struct bench_pass {
  const bench_data *data;
  const optimizer *opt;
} bench_pass;

/* forward, loss, backward and the optimiser's device part: what a device graph records */
static void training_pass(unet *m, void *ctx) {
  const bench_pass *p = ctx;
  unet_forward(m, 1);
  m->be->softmax_cross_entropy(&m->logits, p->data->labels, p->data->class_weights, 255, 1.0f, NULL,
                               &m->grad_logits, m->scalars);
  unet_backward(m);
  optimizer_apply(p->opt, m);
}

static void inference_pass(unet *m, void *ctx) {
  const bench_pass *p = ctx;
  unet_forward(m, 0);
  m->be->argmax_channels(&m->logits, p->data->predictions, NULL);
}

/* Seconds per training step over `steps` after `warmup` untimed ones; *graphed: whether the
 * timed steps replayed a device graph. */
static double time_training(const backend *be, unet_config config, int warmup, int steps,
                            int graphs, int *graphed) {
  config.mode = UNET_TRAINING;
  unet *m = unet_create(be, &config, 1);
  bench_data d = bench_data_create(be, m);
  be->tensor_from_nchw(&m->input, d.host_input);
  adam_config adam = {0.9f, 0.999f, 1e-8f, 1e-4f, 1};
  schedule_config schedule = {1e-3, 0.1, warmup + steps};
  optimizer *opt = optimizer_create(be, m->param_list.total, adam, schedule, 1.0);
  pass_graph graph;
  pass_graph_init(&graph, "bench training step", m, graphs);
  bench_pass pass = {&d, opt};
  double start = 0.0, scalars[SCALAR_COUNT];
  for (int s = 0; s < warmup + steps; s++) {
    if (s == warmup) start = progress_now();
    optimizer_prepare_step(opt, m);
    unet_run_pass(m, &graph, optimizer_graph_key(opt, m), training_pass, &pass);
    unet_read_scalars(m, scalars);
  }
  double seconds = progress_now() - start;
  *graphed = pass_graph_active(&graph);
  pass_graph_release(&graph, m);
  optimizer_destroy(opt);
  bench_data_free(be, &d);
  unet_destroy(m);
  return seconds / steps;
}

/* Seconds per inference batch over `batches` after two untimed ones (the second records the
 * device graph where there is one). */
static double time_inference(const backend *be, unet_config config, int batches, int graphs,
                             int *graphed) {
  config.mode = UNET_INFERENCE;
  unet *m = unet_create(be, &config, 1);
  bench_data d = bench_data_create(be, m);
  be->tensor_from_nchw(&m->input, d.host_input);
  size_t pixels = (size_t)m->batch * m->height * m->width;
  pass_graph graph;
  pass_graph_init(&graph, "bench inference batch", m, graphs);
  bench_pass pass = {&d, NULL};
  double start = 0.0;
  for (int b = 0; b < 2 + batches; b++) {
    if (b == 2) start = progress_now();
    unet_run_pass(m, &graph, 0, inference_pass, &pass);
    be->download(d.host_predictions, d.predictions, FP_U8, pixels);
  }
  double seconds = progress_now() - start;
  *graphed = pass_graph_active(&graph);
  pass_graph_release(&graph, m);
  bench_data_free(be, &d);
  unet_destroy(m);
  return seconds / batches;
}

int main(int argc, char **argv) {
  const char *arch_name = "r34", *backend_name = "auto", *precision_name = "auto";
  int height = 288, width = 192, batch = 8, threads = 0, classes = 59;
  int warmup = 2, steps = 5, infer_batches = 5, graphs = 1, fold = 1;
  cli_option options[] = {
      {"--arch", CLI_STRING, &arch_name, 0, 0},
      {"--height", CLI_INT, &height, 32, 8192},
      {"--width", CLI_INT, &width, 32, 8192},
      {"--batch", CLI_INT, &batch, 1, 4096},
      {"--threads", CLI_INT, &threads, 0, 1024},
      {"--classes", CLI_INT, &classes, 2, 255},
      {"--warmup", CLI_INT, &warmup, 0, 1000},
      {"--steps", CLI_INT, &steps, 1, 100000},
      {"--infer-batches", CLI_INT, &infer_batches, 1, 100000},
      {"--backend", CLI_STRING, &backend_name, 0, 0},
      {"--precision", CLI_STRING, &precision_name, 0, 0},
      {"--graphs", CLI_INT, &graphs, 0, 1},
      {"--fold", CLI_INT, &fold, 0, 1},
  };
  if (cli_parse(argc, argv, options, sizeof options / sizeof options[0], usage) != argc) {
    usage(stderr);
    return 2;
  }
  unet_arch arch;
  if (unet_arch_parse(arch_name, &arch) != 0) {
    fprintf(stderr, "bench: --arch must be one of " UNET_ARCH_WORDS ", not '%s'\n", arch_name);
    return 2;
  }
  if (threads > 0) omp_set_num_threads(threads);
  runtime rt = runtime_open(backend_name, precision_name, "command line", 0);
  char where[400];
  runtime_describe(&rt, where, sizeof where);
  fprintf(stderr, "bench: %s\n", where);

  unet_config config = {.arch = arch,
                        .classes = classes,
                        .batch = batch,
                        .height = height,
                        .width = width,
                        .compute = rt.compute,
                        .mode = UNET_TRAINING,
                        .unfolded = !fold};
  int train_graphed = 0, infer_graphed = 0;
  double step_s = time_training(rt.be, config, warmup, steps, graphs, &train_graphed);
  double batch_s = time_inference(rt.be, config, infer_batches, graphs, &infer_graphed);
  printf("engine=c arch=%s height=%d width=%d batch=%d threads=%d backend=%s precision=%s "
         "train_img_s=%.3f infer_img_s=%.3f train_step_s=%.3f infer_batch_s=%.3f "
         "reference_primitives=%d graphs=%d/%d fold=%d\n",
         arch_name, height, width, batch, omp_get_max_threads(), rt.be->name,
         runtime_precision_name(rt.compute), batch / step_s, batch / batch_s, step_s, batch_s,
         rt.be->reference_primitive_count(), train_graphed, infer_graphed, fold);
  return 0;
}
