/* train JOBFILE [section.key=value ...]: trains the U-Net on an HDF5 dataset made by `ingest`,
 * validating and checkpointing every epoch. Under mpirun or srun every rank trains on its own
 * shard of each global batch and gradients are averaged (data parallel); rank 0 prints and
 * writes the checkpoints. SIGTERM, SIGUSR1 or SIGINT: finish the step, checkpoint, exit 75. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint.h"
#include "checkpoint_dir.h"
#include "collective.h"
#include "config.h"
#include "data_parallel.h"
#include "dataset.h"
#include "hash.h"
#include "loader.h"
#include "metrics.h"
#include "optim.h"
#include "pretrained.h"
#include "progress.h"
#include "runtime.h"
#include "step_log.h"
#include "train_loss.h"
#include "train_step.h"
#include "unet.h"

enum { EXIT_NON_FINITE_LOSS = 3, EXIT_PREEMPTED = 75 /* EX_TEMPFAIL: requeue me */ };

static void usage(FILE *out) {
  fprintf(
      out,
      "usage: train JOBFILE [section.key=value ...]\n"
      "Trains the U-Net described by the job file (see jobs/README.md) on an HDF5 dataset\n"
      "made by `ingest`. Overrides on the command line win over the file, e.g.\n"
      "  train jobs/ccp_r34.ini train.batch=4 data.limit=64\n"
      "Per epoch it prints the training loss and pixel accuracy and, on the validation\n"
      "split, pixel accuracy and mIoU; checkpoints go to checkpoint.dir/last.h5 (and\n"
      "best.h5, by validation mIoU excluding background), and every step's loss to\n"
      "checkpoint.dir/steps.csv. Under mpirun/srun the ranks train data-parallel, each\n"
      "on its share of every global batch (train.batch images per rank).\n"
      "SIGTERM, SIGUSR1 or SIGINT finishes the current step, writes last.h5 and exits 75 (more\n"
      "signals meanwhile do not interrupt it); with\n"
      "checkpoint.resume=auto the next run continues exactly where it stopped.\n"
      "Exit status: 0 done, 1 error, 3 stopped on a non-finite loss or gradients (the last\n"
      "good checkpoint is kept; dynamic loss scaling skips such steps instead), 75 stopped by\n"
      "a signal (requeue).\n\n"
      "Job-file keys:\n");
  train_config_print_help(out);
}

static volatile sig_atomic_t stop_requested;

static void request_stop(int signal_number) {
  (void)signal_number;
  stop_requested = 1;
}

/* SIGTERM (Slurm), SIGUSR1 (mpirun forwards it) and SIGINT (Ctrl-C) all ask for the graceful
 * stop, and keep doing so: with sigaction, not signal(), whose System V semantics under strict
 * C11 would reset the handler after the first, so that a second signal killed the run in the
 * middle of saving. */
static void install_stop_handlers(void) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  const int signals[] = {SIGTERM, SIGUSR1, SIGINT};
  for (size_t i = 0; i < sizeof signals / sizeof *signals; i++)
    FP_CHECK(sigaction(signals[i], &action, NULL) == 0, "sigaction(%d): %s", signals[i],
             strerror(errno));
}

typedef struct trainer {
  train_config cfg;
  const char *job; /* the job file's path, for messages */
  runtime rt;
  const backend *be;
  collective *comm;
  int checkpoint_lock; /* rank 0: held for the run (checkpoint_dir.h); -1 elsewhere */
  int rank, world_size;
  unet *model;
  optimizer *opt;
  data_parallel *dp;
  loader *train_loader, *val_loader;
  float *class_weights;      /* backend memory */
  float *host_class_weights; /* host copy, for the loss normaliser */
  train_step step;           /* its labels and predictions serve validation too */
  const char **class_names;
  int classes;
  long steps_per_epoch;
  confusion train_conf, val_conf;
  double best_miou, epoch_loss_sum; /* the sum over the current epoch's steps */
  long best_epoch;                  /* 1-based epoch of best_miou, 0 = none yet */
  long total_epochs;                /* train.frozen_epochs + train.epochs */
  int stop;                         /* a rank was asked to stop */
  progress prog;
  train_loss loss;
  step_log steps; /* rank 0 only */
  char config_text[16384];
  char last_path[1100], best_path[1100];
} trainer;

/* The loader's next batch, its images queued for the device in staging slot `slot` (on a GPU
 * the copy runs beside the step still computing); 0 at the epoch's end. */
static int next_staged(trainer *t, loader_batch *batch, int slot) {
  if (!loader_next(t->train_loader, batch)) return 0;
  t->be->stage_input(slot, batch->images, tensor_count(&t->model->input));
  return 1;
}

/* Sums a confusion matrix over all ranks, in place. */
static void sum_confusion(trainer *t, confusion *conf) {
  if (t->world_size == 1) return;
  size_t cells = (size_t)conf->classes * conf->classes;
  double *values = fp_malloc(cells * sizeof *values);
  for (size_t i = 0; i < cells; i++) values[i] = (double)conf->counts[i];
  collective_allreduce_sum_host_doubles(t->comm, values, cells);
  for (size_t i = 0; i < cells; i++) conf->counts[i] = (int64_t)values[i];
  free(values);
}

/* Eval-mode pass over every image of the validation split, each rank over its shard (the last
 * batch's empty slots carry the ignore label, so they count nowhere). */
static seg_metrics validate(trainer *t, confusion *conf, double *val_loss) {
  const backend *be = t->be;
  unet *m = t->model;
  size_t pixels = (size_t)m->batch * m->height * m->width;
  confusion_reset(conf);
  loader_start_epoch(t->val_loader, 0);
  loader_batch batch;
  double sums[2] = {0.0, 0.0}; /* loss x images, images */
  train_step *s = &t->step;
  while (loader_next(t->val_loader, &batch)) {
    be->tensor_from_nchw(&m->input, batch.images);
    be->upload(s->labels, batch.masks, FP_U8, pixels);
    unet_forward(m, 0);
    be->softmax_cross_entropy(&m->logits, s->labels, t->class_weights, t->cfg.ignore_label, 1.0f,
                              NULL, NULL, m->scalars);
    double scalars[SCALAR_COUNT];
    unet_read_scalars(m, scalars);
    sums[0] += scalars[SCALAR_LOSS] * batch.count;
    sums[1] += batch.count;
    be->argmax_channels(&m->logits, s->predictions, NULL);
    be->download(s->host_predictions, s->predictions, FP_U8, pixels);
    confusion_add(conf, batch.masks, s->host_predictions, pixels, t->cfg.ignore_label);
  }
  if (t->world_size > 1) collective_allreduce_sum_host_doubles(t->comm, sums, 2);
  sum_confusion(t, conf);
  *val_loss = sums[1] > 0 ? sums[0] / sums[1] : NAN;
  return confusion_metrics(conf);
}

static void save(trainer *t, const char *path, long epoch, double best_metric,
                 double epoch_loss_sum, confusion *epoch_confusion) {
  if (t->rank != 0) return;
  checkpoint_info info = {.arch = t->model->arch,
                          .classes = t->model->classes,
                          .height = t->model->height,
                          .width = t->model->width,
                          .step = t->opt->step,
                          .epoch = epoch,
                          .best_metric = best_metric,
                          .best_epoch = t->best_epoch,
                          .global_batch = (long)t->cfg.batch * t->world_size,
                          .epoch_loss_sum = epoch_loss_sum,
                          .epoch_confusion = epoch_confusion ? epoch_confusion->counts : NULL};
  checkpoint_save(path, t->model, t->opt, &info, t->config_text, t->class_names);
}

static void open_loaders(trainer *t) {
  loader_config train_lc = {.path = t->cfg.dataset,
                            .batch_size = t->cfg.batch,
                            .rank = t->rank,
                            .world_size = t->world_size,
                            .seed = t->cfg.seed,
                            .shuffle = 1,
                            .augment = t->cfg.augment ? &t->cfg.augmentation : NULL,
                            .limit = t->cfg.limit,
                            .tags_path = t->cfg.tags_dataset[0] ? t->cfg.tags_dataset : NULL,
                            .tags_limit = t->cfg.tags_limit,
                            .image_alloc = t->be->host_alloc,
                            .image_release = t->be->host_release};
  t->train_loader = loader_open(&train_lc);
  const char *val_path = t->cfg.val_dataset[0] ? t->cfg.val_dataset : t->cfg.dataset;
  loader_config val_lc = {.path = val_path,
                          .split = t->cfg.val_dataset[0] ? -1 : 1,
                          .batch_size = t->cfg.batch,
                          .rank = t->rank,
                          .world_size = t->world_size,
                          .seed = t->cfg.seed,
                          .limit = t->cfg.val_limit,
                          .keep_partial = 1,
                          .pad_label = (uint8_t)t->cfg.ignore_label,
                          .image_alloc = t->be->host_alloc,
                          .image_release = t->be->host_release};
  t->val_loader = loader_open(&val_lc);
  t->steps_per_epoch = (long)loader_batches_per_epoch(t->train_loader);
  FP_CHECK(t->steps_per_epoch > 0,
           "%s: fewer training images than one global batch of %d x %d ranks", t->cfg.dataset,
           t->cfg.batch, t->world_size);
}

/* Reads the class count and names from the dataset and checks it fits the job. */
static int dataset_classes(trainer *t, const char *job) {
  fp_dataset *ds = dataset_open(t->cfg.dataset);
  FP_CHECK(dataset_has_masks(ds), "%s: dataset has no /masks (data.dataset must be annotated)",
           t->cfg.dataset);
  if (dataset_height(ds) != t->cfg.height || dataset_width(ds) != t->cfg.width)
    FP_FATAL("%s: images are %dx%d but model.height x model.width is %dx%d (job %s)",
             t->cfg.dataset, dataset_height(ds), dataset_width(ds), t->cfg.height, t->cfg.width,
             job);
  int classes = t->cfg.classes ? t->cfg.classes : dataset_num_classes(ds);
  if (classes != dataset_num_classes(ds))
    FP_FATAL("%s: dataset has %d classes but model.classes is %d (job %s)", t->cfg.dataset,
             dataset_num_classes(ds), classes, job);
  t->class_names = fp_calloc((size_t)classes, sizeof *t->class_names);
  for (int k = 0; k < classes; k++) t->class_names[k] = strdup(dataset_class_name(ds, k));
  dataset_close(ds);
  return classes;
}

static void broadcast_state(trainer *t) {
  if (t->world_size == 1) return;
  unet *m = t->model;
  size_t f32 = fp_dtype_size(FP_F32);
  collective_broadcast(t->comm, m->params, m->param_list.total * f32, 0);
  collective_broadcast(t->comm, m->buffers, m->buffer_list.total * f32, 0);
  collective_broadcast(t->comm, t->opt->exp_avg, t->opt->count * f32, 0);
  collective_broadcast(t->comm, t->opt->exp_avg_sq, t->opt->count * f32, 0);
  unet_weights_changed(m);
}

/* The training phases: with train.frozen_epochs > 0, first those epochs with the encoder frozen
 * and a one-cycle schedule to train.frozen_lr, then train.epochs with every layer, a one-cycle
 * schedule to train.lr and a new Adam state. starting: the phase begins now (reset Adam);
 * otherwise the state comes from step 0 or a checkpoint of the same phase. */
static void set_phase(trainer *t, long epoch, int starting) {
  int frozen = epoch < t->cfg.frozen_epochs;
  long frozen_steps = t->steps_per_epoch * t->cfg.frozen_epochs;
  schedule_config schedule = {frozen ? t->cfg.frozen_lr : t->cfg.lr, t->cfg.warmup,
                              frozen ? frozen_steps : t->steps_per_epoch * t->cfg.epochs};
  unet_freeze_encoder(t->model, frozen);
  if (starting) {
    optimizer_start_phase(t->opt, schedule);
  } else {
    t->opt->schedule = schedule;
    t->opt->phase_start = frozen ? 0 : frozen_steps;
  }
}

/* The job, the runtime, the data, the model, the optimiser and the step's buffers. */
static void setup(trainer *t, int argc, char **argv) {
  t->job = argv[1];
  t->checkpoint_lock = -1;
  train_config_defaults(&t->cfg);
  train_config_load(&t->cfg, t->job, argc - 2, argv + 2);
  train_config_validate(&t->cfg, t->job);
  t->rt = runtime_open(t->cfg.backend, t->cfg.precision, t->job, 1);
  t->comm = t->rt.comm;
  t->be = t->rt.be;
  t->rank = collective_rank(t->comm);
  t->world_size = collective_size(t->comm);
  train_config_to_ini(&t->cfg, t->config_text, sizeof t->config_text);
  FP_CHECK(collective_all_equal_u64(t->comm, fnv1a64(t->config_text, strlen(t->config_text))),
           "the ranks were started with different job settings (%s and overrides); every rank "
           "must run the same job",
           t->job);
  if (t->cfg.threads > 0) omp_set_num_threads(t->cfg.threads);
  install_stop_handlers();

  t->classes = dataset_classes(t, t->job);
  unet_arch arch;
  FP_CHECK(unet_arch_parse(t->cfg.arch, &arch) == 0, "%s: model.arch '%s'", t->job, t->cfg.arch);
  const backend *be = t->be;
  open_loaders(t);
  unet_config model_config = {.arch = arch,
                              .classes = t->classes,
                              .batch = t->cfg.batch,
                              .height = t->cfg.height,
                              .width = t->cfg.width,
                              .compute = t->rt.compute,
                              .mode = UNET_TRAINING,
                              .branches = train_config_branches(&t->cfg, t->job)};
  t->model = unet_create(be, &model_config, t->cfg.seed);
  t->model->bn_momentum = (float)t->cfg.bn_momentum;
  if (t->world_size > 1) {
    size_t bucket_floats = (size_t)(t->cfg.bucket_mb * 1024 * 1024 / fp_dtype_size(FP_F32));
    t->dp = data_parallel_attach(t->model, t->comm, bucket_floats > 0 ? bucket_floats : 1);
    if (t->cfg.sync_bn) unet_enable_sync_bn(t->model);
  }
  adam_config adam = {0.9f, 0.999f, (float)t->cfg.adam_eps, (float)t->cfg.weight_decay,
                      strcmp(t->cfg.optimizer, "adam") != 0};
  t->total_epochs = (long)t->cfg.frozen_epochs + t->cfg.epochs;
  schedule_config unused = {t->cfg.lr, t->cfg.warmup, 1}; /* set_phase sets the real one */
  t->opt = optimizer_create(be, t->model->param_list.total, adam, unused, t->cfg.clip_norm);
  int dynamic = !strcmp(t->cfg.loss_scale, "dynamic") ||
                (!strcmp(t->cfg.loss_scale, "auto") && t->rt.compute == FP_F16);
  int scaled = dynamic || !strcmp(t->cfg.loss_scale, "fixed");
  t->opt->scaler =
      (loss_scaler){dynamic, scaled ? t->cfg.loss_scale_init : 1.0, t->cfg.loss_scale_interval, 0};
  set_phase(t, 0, 0);

  size_t classes = (size_t)t->classes;
  t->host_class_weights = fp_malloc(classes * sizeof *t->host_class_weights);
  train_config_class_weights(&t->cfg, t->classes, t->host_class_weights);
  t->class_weights = be->alloc(FP_F32, classes);
  be->upload(t->class_weights, t->host_class_weights, FP_F32, classes);
  train_step_init(&t->step, t->model, (long)t->rank * t->cfg.batch);
  loss_spec spec = {.labels = t->step.labels,
                    .class_weights = t->class_weights,
                    .ignore_label = t->cfg.ignore_label,
                    .class_loss_weight = (float)t->cfg.class_loss_weight,
                    .box_loss_weight = (float)t->cfg.box_loss_weight,
                    .loss_scale = 1.0f}; /* train_step_queue sets the step's */
  train_loss_init(&t->loss, t->model, spec, t->host_class_weights, t->comm, t->world_size);
  train_step_bind(&t->step, t->opt, &t->loss, t->dp, t->cfg.graphs);
  confusion_init(&t->train_conf, t->classes);
  confusion_init(&t->val_conf, t->classes);
}

/* Continues from checkpoint.dir/last.h5 (resume=auto) or starts afresh; every rank then holds
 * rank 0's state. */
static void resume_or_start(trainer *t) {
  if (t->rank == 0) t->checkpoint_lock = checkpoint_dir_open(t->cfg.checkpoint_dir);
  snprintf(t->last_path, sizeof t->last_path, "%s/last.h5", t->cfg.checkpoint_dir);
  snprintf(t->best_path, sizeof t->best_path, "%s/best.h5", t->cfg.checkpoint_dir);
  t->best_miou = -1.0;
  if (!strcmp(t->cfg.resume, "auto") && access(t->last_path, F_OK) == 0) {
    checkpoint_info info = checkpoint_load(t->last_path, t->model, t->opt, t->train_conf.counts);
    long global_batch = (long)t->cfg.batch * t->world_size;
    if (info.global_batch != 0 && info.global_batch != global_batch)
      FP_FATAL("%s: checkpoint field 'global_batch' is %ld but this run's is %ld (train.batch %d "
               "x %d ranks); resume with the same global batch so that the data order continues "
               "(any rank count with that product works)",
               t->last_path, info.global_batch, global_batch, t->cfg.batch, t->world_size);
    t->best_miou = info.best_metric;
    t->best_epoch = info.best_epoch;
    if (access(t->best_path, F_OK) == 0) { /* best.h5 is saved first: it may be ahead */
      checkpoint_info best = checkpoint_peek(t->best_path);
      if (best.best_metric > t->best_miou) {
        t->best_miou = best.best_metric;
        t->best_epoch = best.best_epoch;
      }
    }
    t->epoch_loss_sum = info.epoch_loss_sum;
    set_phase(t, info.step / t->steps_per_epoch, 0);
    if (t->rank == 0)
      printf("resumed from %s: step %ld (epoch %ld, batch %ld of %ld)\n", t->last_path, info.step,
             info.step / t->steps_per_epoch + 1, info.step % t->steps_per_epoch,
             t->steps_per_epoch);
  } else if (t->cfg.init[0] && t->rank == 0) { /* broadcast_state gives the other ranks them */
    printf("train: model.init:\n");
    unet_load_pretrained(t->model, t->cfg.init, stdout);
  }
  if (t->rank != 0) confusion_reset(&t->train_conf); /* rank 0 carries the unfinished epoch's */
  broadcast_state(t);
  if (t->rank == 0)
    step_log_open(&t->steps, t->cfg.checkpoint_dir, t->model->br.mode != BRANCHES_NONE,
                  t->opt->scaler.dynamic || t->opt->scaler.scale != 1.0, t->opt->step);
  char where[400];
  runtime_describe(&t->rt, where, sizeof where);
  if (t->rank == 0)
    printf("train: %s %dx%d, %d classes, batch %d x %d ranks, %ld steps/epoch, %d epochs, %zu "
           "parameters, %d threads/rank%s\ntrain: %s\n",
           t->cfg.arch, t->cfg.height, t->cfg.width, t->classes, t->cfg.batch, t->world_size,
           t->steps_per_epoch, (int)t->total_epochs, t->model->param_list.total,
           omp_get_max_threads(), t->model->sync.enabled ? ", synchronized BN" : "", where);
  if (t->rank == 0 && t->cfg.tags_dataset[0])
    printf("train: %lld training images, %lld of them tag-only from %s (class branch only)\n",
           (long long)loader_images(t->train_loader),
           (long long)loader_tag_only_images(t->train_loader), t->cfg.tags_dataset);
}

/* Waits for the queued step; its scalars checked and logged; a stop saves. Returns 0 to go on,
 * or the exit status to stop with. */
static int finish_step(trainer *t, long epoch, step_row row) {
  double scalars[SCALAR_COUNT];
  train_step_wait(&t->step, &t->train_conf, scalars); /* the step's one wait */
  row.grad_norm = scalars[SCALAR_GRAD_NORM];
  row.losses = train_loss_global(&t->loss, scalars);
  double loss = row.losses.total;
  step_outcome outcome = optimizer_finish_step(t->opt, scalars[SCALAR_NONFINITE] == 0.0);
  if (!isfinite(loss) || outcome == STEP_FAILED) {
    if (t->rank == 0)
      fprintf(stderr,
              "error: loss is %f and gradient norm %f at step %ld (epoch %ld, loss scale %g); "
              "stopping. The last good checkpoint is kept: %s\n",
              loss, row.grad_norm, t->opt->step, epoch + 1, row.loss_scale, t->last_path);
    return EXIT_NON_FINITE_LOSS;
  }
  row.skipped = outcome == STEP_SKIPPED;
  if (row.skipped && t->rank == 0)
    fprintf(stderr,
            "train: step %ld: gradients not finite at loss scale %g: update skipped, loss scale "
            "now %g\n",
            t->opt->step, row.loss_scale, t->opt->scaler.scale);
  t->epoch_loss_sum += loss;
  if (t->rank == 0) step_log_write(&t->steps, &row);
  progress_advance(&t->prog, (long)t->cfg.batch * t->world_size);
  long epoch_step = t->opt->step - epoch * t->steps_per_epoch;
  if (t->rank == 0 && (epoch_step % t->cfg.log_every == 0 || epoch_step == t->steps_per_epoch))
    progress_print(&t->prog, "epoch %ld step %ld/%ld loss %.4f lr %.2e grad_norm %.3f", epoch + 1,
                   epoch_step, t->steps_per_epoch, loss, row.lr, row.grad_norm);
  if (t->stop && epoch_step < t->steps_per_epoch) {
    sum_confusion(t, &t->train_conf);
    save(t, t->last_path, epoch, t->best_miou, t->epoch_loss_sum, &t->train_conf);
    if (t->rank == 0)
      printf("stopped by a signal after step %ld (epoch %ld, batch %ld of %ld); %s holds it and "
             "resume=auto continues from there\n",
             t->opt->step, epoch + 1, epoch_step, t->steps_per_epoch, t->last_path);
    fflush(stdout);
    collective_barrier(t->comm);
    return EXIT_PREEMPTED;
  }
  return 0;
}

/* Early stopping: `epochs_done` epochs are done and val_miou has not improved in the last
 * train.patience of them that belong to the second phase. */
static int patience_exhausted(const trainer *t, long epochs_done) {
  long since = t->best_epoch > t->cfg.frozen_epochs ? t->best_epoch : t->cfg.frozen_epochs;
  return t->cfg.patience > 0 && epochs_done - since >= t->cfg.patience;
}

/* Batch norm's running statistics of rank 0 to every rank, before validating: without
 * train.sync_bn each rank's drift apart, and rank 0's are the ones checkpoints keep (and a
 * resumed run restores on every rank), so every rank validates the model that is saved, and a
 * resumed run validates exactly as an uninterrupted one (as PyTorch DDP's broadcast_buffers). */
static void share_bn_statistics(trainer *t) {
  if (t->world_size == 1) return;
  unet *m = t->model;
  collective_broadcast(t->comm, m->buffers, m->buffer_list.total * fp_dtype_size(FP_F32), 0);
}

/* Validation, the epoch's line and checkpoints. Returns 0 to go on, or the exit status. */
static int end_epoch(trainer *t, long epoch, long first_batch, double epoch_start_s) {
  double train_img_s = (double)(t->steps_per_epoch - first_batch) * t->cfg.batch * t->world_size /
                       (progress_now() - epoch_start_s);
  sum_confusion(t, &t->train_conf);
  seg_metrics train_metrics = confusion_metrics(&t->train_conf);
  share_bn_statistics(t);
  double val_loss;
  seg_metrics val = validate(t, &t->val_conf, &val_loss);
  if (t->rank == 0)
    printf("epoch %ld/%d train_loss %.4f train_pixel_acc %.4f val_loss %.4f val_pixel_acc %.4f "
           "val_miou %.4f val_miou_with_bg %.4f val_mask_iou %.4f train_img_s %.2f\n",
           epoch + 1, (int)t->total_epochs, t->epoch_loss_sum / t->steps_per_epoch,
           train_metrics.pixel_accuracy, val_loss, val.pixel_accuracy, val.miou_foreground,
           val.miou_all, val.mask_iou, train_img_s);
  fflush(stdout);
  int is_best = val.miou_foreground > t->best_miou;
  if (is_best) {
    t->best_miou = val.miou_foreground;
    t->best_epoch = epoch + 1;
  }
  int last_epoch = epoch + 1 == t->total_epochs || patience_exhausted(t, epoch + 1);
  /* best.h5 before last.h5: a kill between the two leaves last.h5 at the previous epoch, which
   * the resumed run redoes (resume_or_start takes best_metric from best.h5 when it is higher) */
  if (is_best) save(t, t->best_path, epoch + 1, t->best_miou, 0.0, NULL);
  if ((epoch + 1) % t->cfg.checkpoint_every == 0 || last_epoch || t->stop)
    save(t, t->last_path, epoch + 1, t->best_miou, 0.0, NULL);
  if (t->stop && !last_epoch) {
    if (t->rank == 0)
      printf("stopped by a signal at the end of epoch %ld; resume=auto continues from %s\n",
             epoch + 1, t->last_path);
    collective_barrier(t->comm);
    return EXIT_PREEMPTED;
  }
  return 0;
}

static int train(trainer *t) {
  long total_steps = t->steps_per_epoch * t->total_epochs;
  progress_start(&t->prog, "train",
                 (total_steps - t->opt->step) * (long)t->cfg.batch * t->world_size);
  for (long epoch = t->opt->step / t->steps_per_epoch; epoch < t->total_epochs; epoch++) {
    long first_batch = t->opt->step - epoch * t->steps_per_epoch;
    if (patience_exhausted(t, epoch)) {
      if (t->rank == 0)
        printf("early stop: val_miou has not improved for %d epochs (best %.4f after epoch %ld, "
               "in %s)\n",
               t->cfg.patience, t->best_miou, t->best_epoch, t->best_path);
      break;
    }
    if (first_batch == 0) {
      confusion_reset(&t->train_conf);
      t->epoch_loss_sum = 0.0;
      if (epoch == t->cfg.frozen_epochs && epoch > 0) {
        set_phase(t, epoch, 1);
        if (t->rank == 0)
          printf("phase 2 from epoch %ld: every layer trained, lr up to %g, new Adam state\n",
                 epoch + 1, t->cfg.lr);
      }
    }
    loader_start_epoch_at(t->train_loader, (int)epoch, first_batch);
    double epoch_start_s = progress_now();
    loader_batch batches[2];
    int slot = 0, more = next_staged(t, &batches[slot], slot);
    while (more) {
      step_row row = {.epoch = epoch + 1, .loss_scale = t->opt->scaler.scale};
      t->stop = train_step_queue(&t->step, &batches[slot], slot, stop_requested, &row.lr);
      row.step = t->opt->step;
      /* the loader refills this batch's buffers once asked for the next: its copy must be done */
      t->be->stage_wait(slot);
      slot = 1 - slot;
      more = next_staged(t, &batches[slot], slot);
      int status = finish_step(t, epoch, row);
      if (status) return status;
    }
    int status = end_epoch(t, epoch, first_batch, epoch_start_s);
    if (status) return status;
  }
  if (t->rank != 0) return 0;
  printf("done: %ld steps", t->opt->step);
  if (t->model->be->capture_begin)
    printf(" (%ld of this run's through device graphs)", t->step.graph_steps);
  printf(", best val_miou %.4f, checkpoints in %s\n", t->best_miou, t->cfg.checkpoint_dir);
  return 0;
}

static void teardown(trainer *t) {
  step_log_close(&t->steps);
  checkpoint_dir_close(t->checkpoint_lock);
  train_step_free(&t->step);
  t->be->release(t->class_weights);
  free(t->host_class_weights);
  train_loss_free(&t->loss);
  for (int k = 0; k < t->classes; k++) free((void *)t->class_names[k]);
  free(t->class_names);
  confusion_free(&t->train_conf);
  confusion_free(&t->val_conf);
  loader_close(t->train_loader);
  loader_close(t->val_loader);
  data_parallel_detach(t->dp);
  optimizer_destroy(t->opt);
  unet_destroy(t->model);
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
  static trainer t; /* large (config text, paths): not on the stack */
  setup(&t, argc, argv);
  resume_or_start(&t);
  int status = train(&t);
  if (status == 0) teardown(&t);
  collective_destroy(t.comm);
  return status;
}
