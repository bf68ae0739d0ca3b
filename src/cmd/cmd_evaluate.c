/* evaluate: segmentation metrics of a checkpoint on a dataset split. */
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "catalog_prior.h"
#include "catalog_source.h"
#include "check.h"
#include "checkpoint.h"
#include "cli.h"
#include "dataset.h"
#include "loader.h"
#include "metrics.h"
#include "progress.h"
#include "runtime.h"
#include "unet.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: evaluate --checkpoint FILE.h5 --data DATASET.h5 [--split val|test|train|all]\n"
          "                [--batch N] [--limit N] [--threads T]\n"
          "                [--backend auto|cpu] [--precision auto|fp32|bf16]\n"
          "                [--prior-csv FILE --prior-table FILE]\n"
          "Runs the checkpoint's model in inference mode over a split of an HDF5 dataset\n"
          "made by `ingest` and prints pixel accuracy, mIoU over the classes other than\n"
          "background, mIoU including background, the IoU of the foreground/background mask\n"
          "and every class's IoU (classes absent from both truth and prediction are skipped).\n"
          "Defaults: --split val, --batch 8, --limit 0 (all), threads = all cores,\n"
          "--backend auto, --precision auto (bf16 where the CPU has AMX-BF16, else fp32).\n"
          "With --prior-csv (id,product_type per image) and --prior-table (product type ->\n"
          "allowed classes, jobs/category_prior/README.md) it also reports the same metrics\n"
          "with the category prior applied to the logits, and each class's IoU without and\n"
          "with it.\n");
}

/* The same predictions again with the category prior applied to the logits. */
typedef struct prior_evaluation {
  category_prior *prior;
  catalog *images; /* the dataset's ids */
  float *logits;   /* one batch, NCHW on the host */
  confusion conf;
  long images_with_rule, images_seen;
} prior_evaluation;

static void prior_evaluation_open(prior_evaluation *pe, const char *table, const char *csv,
                                  const char *data_path, fp_dataset *ds, const unet *m) {
  int classes = dataset_num_classes(ds);
  char **names = fp_calloc((size_t)classes, sizeof *names);
  for (int k = 0; k < classes; k++) {
    names[k] = strdup(dataset_class_name(ds, k));
    FP_CHECK(names[k], "out of memory");
  }
  pe->prior = category_prior_load(table, csv, names, classes);
  for (int k = 0; k < classes; k++) free(names[k]);
  free(names);
  pe->images = catalog_open(data_path, 0);
  pe->logits = fp_malloc(tensor_count(&m->logits) * sizeof *pe->logits);
  confusion_init(&pe->conf, classes);
}

static void prior_evaluation_batch(prior_evaluation *pe, unet *m, const loader_batch *b,
                                   uint8_t *predictions, uint8_t *host_predictions) {
  const backend *be = m->be;
  size_t plane = (size_t)m->height * m->width;
  be->tensor_to_nchw(&m->logits, pe->logits);
  for (int j = 0; j < b->count; j++) {
    int rule = category_prior_rule(pe->prior, catalog_id(pe->images, b->indices[j]), NULL);
    pe->images_seen++;
    if (rule < 0) continue;
    category_prior_apply(pe->prior, rule, pe->logits + (size_t)j * m->classes * plane, plane);
    pe->images_with_rule++;
  }
  be->tensor_from_nchw(&m->logits, pe->logits);
  be->argmax_channels(&m->logits, predictions);
  be->download(host_predictions, predictions, FP_U8, (size_t)b->count * plane);
  confusion_add(&pe->conf, b->masks, host_predictions, (size_t)b->count * plane, 255);
}

static void prior_evaluation_report(prior_evaluation *pe, const confusion *without, fp_dataset *ds,
                                    const char *table, const char *csv) {
  seg_metrics metrics = confusion_metrics(&pe->conf);
  printf("with the category prior (%s, %s): a rule for %ld of %ld images\n", table, csv,
         pe->images_with_rule, pe->images_seen);
  printf("prior_pixel_accuracy %.4f\nprior_miou_excluding_background %.4f (%d classes)\n"
         "prior_miou_including_background %.4f\nprior_foreground_mask_iou %.4f\n",
         metrics.pixel_accuracy, metrics.miou_foreground, metrics.classes_counted, metrics.miou_all,
         metrics.mask_iou);
  printf("per-class IoU without / with the prior:\n");
  for (int k = 0; k < pe->conf.classes; k++) {
    double before = confusion_class_iou(without, k), after = confusion_class_iou(&pe->conf, k);
    if (before >= 0 || after >= 0)
      printf("  %3d %-20s %.4f %.4f\n", k, dataset_class_name(ds, k), before < 0 ? 0.0 : before,
             after < 0 ? 0.0 : after);
  }
  confusion_free(&pe->conf);
  catalog_close(pe->images);
  category_prior_free(pe->prior);
  free(pe->logits);
}

static int parse_split(const char *name) {
  if (!strcmp(name, "train")) return 0;
  if (!strcmp(name, "val")) return 1;
  if (!strcmp(name, "test")) return 2;
  if (!strcmp(name, "all")) return -1;
  fprintf(stderr, "error: --split must be train, val, test or all, not '%s'\n", name);
  exit(2);
}

int main(int argc, char **argv) {
  const char *checkpoint_path = NULL, *data_path = NULL, *split_name = "val";
  const char *prior_csv = NULL, *prior_table = NULL;
  const char *backend_name = "auto", *precision_name = "auto";
  int batch = 8, limit = 0, threads = 0;
  cli_option options[] = {
      {"--checkpoint", CLI_STRING, &checkpoint_path, 0, 0},
      {"--data", CLI_STRING, &data_path, 0, 0},
      {"--split", CLI_STRING, &split_name, 0, 0},
      {"--batch", CLI_INT, &batch, 1, 4096},
      {"--limit", CLI_INT, &limit, 0, 1 << 30},
      {"--threads", CLI_INT, &threads, 0, 1024},
      {"--prior-csv", CLI_STRING, &prior_csv, 0, 0},
      {"--prior-table", CLI_STRING, &prior_table, 0, 0},
      {"--backend", CLI_STRING, &backend_name, 0, 0},
      {"--precision", CLI_STRING, &precision_name, 0, 0},
  };
  if (cli_parse(argc, argv, options, sizeof options / sizeof options[0], usage) != argc ||
      !checkpoint_path || !data_path) {
    fprintf(stderr, "error: --checkpoint and --data are required\n");
    usage(stderr);
    return 2;
  }
  if (!prior_csv != !prior_table) {
    fprintf(stderr, "error: --prior-csv and --prior-table go together\n");
    usage(stderr);
    return 2;
  }
  int split = parse_split(split_name);
  if (threads > 0) omp_set_num_threads(threads);

  checkpoint_info info = checkpoint_peek(checkpoint_path);
  fp_dataset *ds = dataset_open(data_path);
  FP_CHECK(dataset_has_masks(ds), "%s: dataset has no /masks to evaluate against", data_path);
  if (dataset_num_classes(ds) != info.classes)
    FP_FATAL("%s: dataset has %d classes but checkpoint %s (field 'classes') has %d", data_path,
             dataset_num_classes(ds), checkpoint_path, info.classes);
  if (dataset_height(ds) != info.height || dataset_width(ds) != info.width)
    FP_FATAL("%s: images are %dx%d but checkpoint %s was trained at %dx%d (fields height, width)",
             data_path, dataset_height(ds), dataset_width(ds), checkpoint_path, info.height,
             info.width);

  runtime rt = runtime_open(backend_name, precision_name, "command line", 0);
  const backend *be = rt.be;
  char where[400];
  runtime_describe(&rt, where, sizeof where);
  printf("evaluate: %s\n", where);
  unet_config model_config = {info.arch,  info.classes, batch,          info.height,
                              info.width, rt.compute,   UNET_INFERENCE};
  unet *m = unet_create(be, &model_config, 0);
  checkpoint_load(checkpoint_path, m, NULL, NULL);
  loader_config lc = {data_path, split, batch, 0, 1, 0, 0, 0, limit, 1, 255};
  loader *ld = loader_open(&lc);
  size_t pixels = (size_t)batch * info.height * info.width;
  uint8_t *predictions = be->alloc(FP_U8, pixels), *host_predictions = fp_malloc(pixels);
  prior_evaluation pe = {0};
  if (prior_table) prior_evaluation_open(&pe, prior_table, prior_csv, data_path, ds, m);
  confusion conf;
  confusion_init(&conf, info.classes);
  progress prog;
  progress_start(&prog, "evaluate", (long)loader_batches_per_epoch(ld) * batch);
  loader_start_epoch(ld, 0);
  loader_batch b;
  while (loader_next(ld, &b)) {
    be->tensor_from_nchw(&m->input, b.images);
    unet_forward(m, 0);
    be->argmax_channels(&m->logits, predictions);
    be->download(host_predictions, predictions, FP_U8, pixels);
    confusion_add(&conf, b.masks, host_predictions, pixels, 255);
    if (pe.prior) prior_evaluation_batch(&pe, m, &b, predictions, host_predictions);
    progress_advance(&prog, batch);
  }
  progress_print(&prog, "done");
  seg_metrics metrics = confusion_metrics(&conf);
  printf("checkpoint %s (%s, epoch %ld) on %s split %s, %ld images\n", checkpoint_path,
         unet_arch_name(info.arch), info.epoch, data_path, split_name, prog.done);
  printf("pixel_accuracy %.4f\nmiou_excluding_background %.4f (%d classes)\n"
         "miou_including_background %.4f\nforeground_mask_iou %.4f\n",
         metrics.pixel_accuracy, metrics.miou_foreground, metrics.classes_counted,
         metrics.miou_all, metrics.mask_iou);
  printf("per-class IoU:\n");
  for (int k = 0; k < info.classes; k++) {
    double iou = confusion_class_iou(&conf, k);
    if (iou >= 0) printf("  %3d %-20s %.4f\n", k, dataset_class_name(ds, k), iou);
  }
  if (pe.prior) prior_evaluation_report(&pe, &conf, ds, prior_table, prior_csv);
  dataset_close(ds);
  loader_close(ld);
  confusion_free(&conf);
  be->release(predictions);
  free(host_predictions);
  unet_destroy(m);
  return 0;
}
