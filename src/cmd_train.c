/* train JOBFILE [section.key=value ...]: trains the U-Net on an HDF5 dataset
 * made by `ingest`, validating and checkpointing every epoch. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint.h"
#include "config.h"
#include "dataset.h"
#include "loader.h"
#include "metrics.h"
#include "optim.h"
#include "progress.h"
#include "unet.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: train JOBFILE [section.key=value ...]\n"
          "Trains the U-Net described by the job file (see jobs/README.md) on an HDF5 dataset\n"
          "made by `ingest`. Overrides on the command line win over the file, e.g.\n"
          "  train jobs/ccp_r34.ini train.batch=4 data.limit=64\n"
          "Per epoch it prints the training loss and pixel accuracy and, on the validation\n"
          "split, pixel accuracy and mIoU; checkpoints go to checkpoint.dir/last.h5 (and\n"
          "best.h5, by validation mIoU excluding background). Exit status: 0 done, 1 error,\n"
          "3 stopped on a non-finite loss (the last good checkpoint is kept).\n\n"
          "Job-file keys:\n");
  train_config_print_help(out);
}

static void make_directory(const char *path) {
  char partial[1024];
  size_t n = strlen(path);
  FP_CHECK(n < sizeof partial, "checkpoint.dir too long: %s", path);
  for (size_t i = 1; i <= n; i++) {
    if (path[i] == '/' || path[i] == '\0') {
      memcpy(partial, path, i);
      partial[i] = '\0';
      if (mkdir(partial, 0777) != 0 && access(partial, F_OK) != 0)
        FP_FATAL("cannot create directory %s (checkpoint.dir)", partial);
    }
  }
}

typedef struct trainer {
  train_config cfg;
  const backend *be;
  unet *model;
  optimizer *opt;
  loader *train_loader, *val_loader;
  float *class_weights;   /* backend memory */
  uint8_t *labels;        /* backend memory, one batch */
  uint8_t *predictions;   /* backend memory, one batch */
  uint8_t *host_labels, *host_predictions;
  const char **class_names;
  char config_text[16384];
  char last_path[1100], best_path[1100];
} trainer;

static void upload_batch(trainer *t, const loader_batch *batch) {
  const backend *be = t->be;
  be->tensor_from_nchw(&t->model->input, batch->images);
  size_t pixels = (size_t)batch->count * t->model->height * t->model->width;
  be->copy_from_host(t->labels, batch->masks, pixels);
}

/* Eval-mode pass over the validation split. */
static seg_metrics validate(trainer *t, confusion *conf, double *val_loss) {
  const backend *be = t->be;
  unet *m = t->model;
  size_t pixels = (size_t)m->batch * m->height * m->width;
  confusion_reset(conf);
  loader_start_epoch(t->val_loader, 0);
  loader_batch batch;
  double loss_sum = 0.0;
  long batches = 0;
  while (loader_next(t->val_loader, &batch)) {
    upload_batch(t, &batch);
    unet_forward(m, 0);
    loss_sum += be->softmax_cross_entropy(&m->logits, t->labels, t->class_weights,
                                          t->cfg.ignore_label, NULL);
    be->argmax_channels(&m->logits, t->predictions);
    be->copy_to_host(t->host_predictions, t->predictions, pixels);
    confusion_add(conf, batch.masks, t->host_predictions, pixels, t->cfg.ignore_label);
    batches++;
  }
  *val_loss = batches ? loss_sum / batches : NAN;
  return confusion_metrics(conf);
}

static void save(trainer *t, const char *path, long epoch, double best_metric) {
  checkpoint_info info = {t->model->arch, t->model->classes, t->model->height, t->model->width,
                          t->opt->step, epoch, best_metric};
  checkpoint_save(path, t->model, t->opt, &info, t->config_text, t->class_names);
}

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "--help")) {
    usage(stdout);
    return 0;
  }
  if (argc < 2 || argv[1][0] == '-') {
    usage(stderr);
    return 2;
  }
  trainer t = {0};
  train_config_defaults(&t.cfg);
  train_config_load(&t.cfg, argv[1], argc - 2, argv + 2);
  train_config_validate(&t.cfg, argv[1]);
  train_config_to_ini(&t.cfg, t.config_text, sizeof t.config_text);
  if (t.cfg.threads > 0) omp_set_num_threads(t.cfg.threads);

  fp_dataset *ds = dataset_open(t.cfg.dataset);
  FP_CHECK(dataset_has_masks(ds), "%s: dataset has no /masks (data.dataset must be annotated)",
           t.cfg.dataset);
  if (dataset_height(ds) != t.cfg.height || dataset_width(ds) != t.cfg.width)
    FP_FATAL("%s: images are %dx%d but model.height x model.width is %dx%d (job %s)",
             t.cfg.dataset, dataset_height(ds), dataset_width(ds), t.cfg.height, t.cfg.width,
             argv[1]);
  int classes = t.cfg.classes ? t.cfg.classes : dataset_num_classes(ds);
  if (classes != dataset_num_classes(ds))
    FP_FATAL("%s: dataset has %d classes but model.classes is %d (job %s)", t.cfg.dataset,
             dataset_num_classes(ds), classes, argv[1]);
  t.class_names = fp_calloc((size_t)classes, sizeof *t.class_names);
  for (int k = 0; k < classes; k++) t.class_names[k] = strdup(dataset_class_name(ds, k));
  dataset_close(ds);

  unet_arch arch;
  FP_CHECK(unet_arch_parse(t.cfg.arch, &arch) == 0, "%s: model.arch '%s'", argv[1], t.cfg.arch);
  t.be = backend_cpu();
  const backend *be = t.be;

  loader_config train_lc = {t.cfg.dataset, 0, t.cfg.batch, 0, 1, t.cfg.seed, 1, t.cfg.augment,
                            t.cfg.limit};
  t.train_loader = loader_open(&train_lc);
  const char *val_path = t.cfg.val_dataset[0] ? t.cfg.val_dataset : t.cfg.dataset;
  loader_config val_lc = {val_path, t.cfg.val_dataset[0] ? -1 : 1, t.cfg.batch, 0, 1, t.cfg.seed,
                          0, 0, t.cfg.val_limit};
  t.val_loader = loader_open(&val_lc);
  long steps_per_epoch = (long)loader_batches_per_epoch(t.train_loader);
  FP_CHECK(steps_per_epoch > 0, "%s: fewer training images than one batch of %d", t.cfg.dataset,
           t.cfg.batch);
  long total_steps = steps_per_epoch * t.cfg.epochs;

  t.model = unet_create(be, arch, classes, t.cfg.batch, t.cfg.height, t.cfg.width, t.cfg.seed);
  t.model->bn_momentum = (float)t.cfg.bn_momentum;
  adam_config adam = {0.0f, 0.9f, 0.999f, 1e-8f, (float)t.cfg.weight_decay,
                      strcmp(t.cfg.optimizer, "adam") != 0};
  schedule_config schedule = {t.cfg.lr, t.cfg.warmup, total_steps};
  t.opt = optimizer_create(be, t.model->param_list.total, adam, schedule, t.cfg.clip_norm);

  float *host_weights = fp_malloc((size_t)classes * sizeof(float));
  train_config_class_weights(&t.cfg, classes, host_weights);
  t.class_weights = be->alloc((size_t)classes * sizeof(float));
  be->copy_from_host(t.class_weights, host_weights, (size_t)classes * sizeof(float));
  size_t pixels = (size_t)t.cfg.batch * t.cfg.height * t.cfg.width;
  t.labels = be->alloc(pixels);
  t.predictions = be->alloc(pixels);
  t.host_predictions = fp_malloc(pixels);

  make_directory(t.cfg.checkpoint_dir);
  snprintf(t.last_path, sizeof t.last_path, "%s/last.h5", t.cfg.checkpoint_dir);
  snprintf(t.best_path, sizeof t.best_path, "%s/best.h5", t.cfg.checkpoint_dir);
  long start_epoch = 0;
  double best_miou = -1.0;
  if (!strcmp(t.cfg.resume, "auto") && access(t.last_path, F_OK) == 0) {
    checkpoint_info info = checkpoint_load(t.last_path, t.model, t.opt);
    start_epoch = info.epoch;
    best_miou = info.best_metric;
    printf("resumed from %s: epoch %ld, step %ld\n", t.last_path, info.epoch, info.step);
  }
  printf("train: %s %dx%d, %d classes, batch %d, %ld steps/epoch, %d epochs, %zu parameters, "
         "%d threads, backend %s\n",
         t.cfg.arch, t.cfg.height, t.cfg.width, classes, t.cfg.batch, steps_per_epoch,
         t.cfg.epochs, t.model->param_list.total, omp_get_max_threads(), be->name);

  confusion train_conf, val_conf;
  confusion_init(&train_conf, classes);
  confusion_init(&val_conf, classes);
  progress prog;
  progress_start(&prog, "train", (total_steps - t.opt->step) * (long)t.cfg.batch);
  for (long epoch = start_epoch; epoch < t.cfg.epochs; epoch++) {
    loader_start_epoch(t.train_loader, (int)epoch);
    confusion_reset(&train_conf);
    double loss_sum = 0.0;
    long steps = 0;
    loader_batch batch;
    while (loader_next(t.train_loader, &batch)) {
      upload_batch(&t, &batch);
      unet_forward(t.model, 1);
      double loss = be->softmax_cross_entropy(&t.model->logits, t.labels, t.class_weights,
                                              t.cfg.ignore_label, &t.model->grad_logits);
      if (!isfinite(loss)) {
        fprintf(stderr,
                "error: loss is %f at step %ld (epoch %ld); stopping. The last good checkpoint "
                "is kept: %s\n",
                loss, t.opt->step, epoch, t.last_path);
        return 3;
      }
      be->argmax_channels(&t.model->logits, t.predictions);
      be->copy_to_host(t.host_predictions, t.predictions, pixels);
      confusion_add(&train_conf, batch.masks, t.host_predictions, pixels, t.cfg.ignore_label);
      unet_backward(t.model);
      step_report report = optimizer_step(t.opt, t.model->params, t.model->grads);
      loss_sum += loss;
      steps++;
      progress_advance(&prog, t.cfg.batch);
      if (steps % t.cfg.log_every == 0 || steps == steps_per_epoch)
        progress_print(&prog, "epoch %ld step %ld/%ld loss %.4f lr %.2e grad_norm %.3f",
                       epoch + 1, steps, steps_per_epoch, loss, report.lr, report.grad_norm);
    }
    seg_metrics train_metrics = confusion_metrics(&train_conf);
    double val_loss;
    seg_metrics val = validate(&t, &val_conf, &val_loss);
    printf("epoch %ld/%d train_loss %.4f train_pixel_acc %.4f val_loss %.4f val_pixel_acc %.4f "
           "val_miou %.4f val_miou_with_bg %.4f val_mask_iou %.4f\n",
           epoch + 1, t.cfg.epochs, loss_sum / steps, train_metrics.pixel_accuracy, val_loss,
           val.pixel_accuracy, val.miou_foreground, val.miou_all, val.mask_iou);
    fflush(stdout);
    int is_best = val.miou_foreground > best_miou;
    if (is_best) best_miou = val.miou_foreground;
    if ((epoch + 1) % t.cfg.checkpoint_every == 0 || epoch + 1 == t.cfg.epochs)
      save(&t, t.last_path, epoch + 1, best_miou);
    if (is_best) save(&t, t.best_path, epoch + 1, best_miou);
  }
  printf("done: %ld steps, best val_miou %.4f, checkpoints in %s\n", t.opt->step, best_miou,
         t.cfg.checkpoint_dir);
  confusion_free(&train_conf);
  confusion_free(&val_conf);
  loader_close(t.train_loader);
  loader_close(t.val_loader);
  optimizer_destroy(t.opt);
  unet_destroy(t.model);
  return 0;
}
