/* evaluate: segmentation metrics of a checkpoint on a dataset split. */
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "checkpoint.h"
#include "cli.h"
#include "dataset.h"
#include "loader.h"
#include "metrics.h"
#include "progress.h"
#include "unet.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: evaluate --checkpoint FILE.h5 --data DATASET.h5 [--split val|test|train|all]\n"
          "                [--batch N] [--limit N] [--threads T]\n"
          "Runs the checkpoint's model in inference mode over a split of an HDF5 dataset\n"
          "made by `ingest` and prints pixel accuracy, mIoU over the classes other than\n"
          "background, mIoU including background, the IoU of the foreground/background mask\n"
          "and every class's IoU (classes absent from both truth and prediction are skipped).\n"
          "Defaults: --split val, --batch 8, --limit 0 (all), threads = all cores.\n");
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
  int batch = 8, limit = 0, threads = 0;
  cli_option options[] = {
      {"--checkpoint", CLI_STRING, &checkpoint_path, 0, 0},
      {"--data", CLI_STRING, &data_path, 0, 0},
      {"--split", CLI_STRING, &split_name, 0, 0},
      {"--batch", CLI_INT, &batch, 1, 4096},
      {"--limit", CLI_INT, &limit, 0, 1 << 30},
      {"--threads", CLI_INT, &threads, 0, 1024},
  };
  if (cli_parse(argc, argv, options, sizeof options / sizeof options[0], usage) != argc ||
      !checkpoint_path || !data_path) {
    fprintf(stderr, "error: --checkpoint and --data are required\n");
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

  const backend *be = backend_cpu();
  unet *m = unet_create(be, info.arch, info.classes, batch, info.height, info.width, 0);
  checkpoint_load(checkpoint_path, m, NULL);
  loader_config lc = {data_path, split, batch, 0, 1, 0, 0, 0, limit};
  loader *ld = loader_open(&lc);
  size_t pixels = (size_t)batch * info.height * info.width;
  uint8_t *predictions = be->alloc(pixels), *host_predictions = fp_malloc(pixels);
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
    be->copy_to_host(host_predictions, predictions, pixels);
    confusion_add(&conf, b.masks, host_predictions, pixels, 255);
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
  dataset_close(ds);
  loader_close(ld);
  confusion_free(&conf);
  unet_destroy(m);
  return 0;
}
