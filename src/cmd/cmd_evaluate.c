/* evaluate: segmentation metrics of a checkpoint on a dataset split. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "branch_evaluation.h"
#include "catalog_files.h"
#include "catalog_prior.h"
#include "catalog_source.h"
#include "check.h"
#include "checkpoint.h"
#include "cli.h"
#include "dataset.h"
#include "durable.h"
#include "h5_tensors.h"
#include "loader.h"
#include "metrics.h"
#include "progress.h"
#include "runtime.h"
#include "unet.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: evaluate --checkpoint FILE.h5 --data DATASET.h5 [--split val|test|train|all]\n"
          "                [--batch N] [--limit N] [--threads T]\n"
          "                [--backend auto|cpu|cuda] [--precision auto|fp32|bf16|fp16]\n"
          "                [--prior-csv FILE --prior-table FILE] [--confusion OUT.csv|OUT.h5]\n"
          "                [--ground-truth-injection]\n"
          "Runs the checkpoint's model in inference mode over a split of an HDF5 dataset\n"
          "made by `ingest` and prints pixel accuracy, mIoU over the classes other than\n"
          "background, mIoU including background, the IoU of the foreground/background mask\n"
          "and every class's IoU (classes absent from both truth and prediction are skipped),\n"
          "then the number of labelled pixels, every class's pixel precision, recall, F1 and\n"
          "F2, and the confusion matrix as row percentages (recall view: of the pixels of\n"
          "true class i, the share predicted j) and column percentages (precision view: of\n"
          "the pixels predicted j, the share whose truth is i); with more than 12 classes the\n"
          "matrices are not printed, only written by --confusion.\n"
          "--confusion OUT writes the confusion matrix (rows = truth, columns = prediction)\n"
          "as counts, row %% and column %%, with the class names: OUT.csv three blocks of\n"
          "CSV, OUT.h5 (or .hdf5) HDF5 datasets /counts, /row_percent, /column_percent and\n"
          "/class_names; written to OUT.tmp, then renamed. docs/evaluate.md: every field.\n"
          "Defaults: --split val, --batch 8, --limit 0 (all), threads = all cores,\n"
          "--backend auto, --precision auto (bf16 where the CPU has AMX-BF16 or is an AMD\n"
          "one with AVX512-BF16, or the GPU has bf16 Tensor Cores, else fp32).\n"
          "With --prior-csv (id,product_type per image) and --prior-table (product type ->\n"
          "allowed classes, jobs/category_prior/README.md) it also reports the same metrics\n"
          "with the category prior applied to the logits, and each class's IoU without and\n"
          "with it.\n"
          "A checkpoint with the Extended U-Net's branches (model.branches) also gets the\n"
          "class branch's multilabel scores (presence where its probability >= 0.5, truth =\n"
          "the classes in the mask): per class support, precision, recall, F1, F2 and\n"
          "accuracy, exact-match ratio, label accuracy and micro scores; and the box branch's\n"
          "IoU with each present class's box in the mask. --ground-truth-injection (injected\n"
          "branches) runs every batch again with the mask's class presence injected instead\n"
          "of the class branch's output and reports the segmentation metrics both ways.\n");
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
  be->argmax_channels(&m->logits, predictions, NULL);
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

/* Classes up to which the confusion matrices are printed as tables. */
#define PRINTED_MATRIX_CLASSES 12

enum confusion_format { CONFUSION_NONE, CONFUSION_CSV, CONFUSION_H5 };

static int ends_with(const char *text, const char *suffix) {
  size_t n = strlen(text), m = strlen(suffix);
  return n > m && !strcmp(text + n - m, suffix);
}

/* The format --confusion's name asks for; exits 2 for another ending, and 1 (before any work)
 * when its directory cannot be written to. */
static enum confusion_format confusion_format_of(const char *path) {
  if (!path) return CONFUSION_NONE;
  enum confusion_format format = CONFUSION_NONE;
  if (ends_with(path, ".csv")) format = CONFUSION_CSV;
  if (ends_with(path, ".h5") || ends_with(path, ".hdf5")) format = CONFUSION_H5;
  if (format == CONFUSION_NONE) {
    fprintf(stderr, "error: --confusion %s: the name must end with .csv or .h5\n", path);
    exit(2);
  }
  char directory[PATH_MAX];
  path_directory(path, directory, sizeof directory);
  if (access(directory, W_OK | X_OK) != 0)
    FP_FATAL("--confusion %s: cannot write to directory %s: %s", path, directory, strerror(errno));
  return format;
}

/* A score in [0, 1] as %.4f, or "-" when undefined (negative), right-aligned in `width`. */
static const char *score_text(char *buffer, size_t size, double value, int width) {
  if (value < 0)
    snprintf(buffer, size, "%*s", width, "-");
  else
    snprintf(buffer, size, "%*.4f", width, value);
  return buffer;
}

static void print_class_scores(const confusion *c, fp_dataset *ds) {
  printf("labelled_pixels %lld\n", (long long)confusion_total(c));
  printf("per-class pixel precision, recall, F1, F2 (- where undefined):\n");
  printf("  %3s %-20s %9s %6s %6s %6s %16s %16s\n", "k", "class", "precision", "recall", "f1", "f2",
         "truth_pixels", "predicted_pixels");
  for (int k = 0; k < c->classes; k++) {
    class_scores s = confusion_class_scores(c, k);
    if (s.truth + s.predicted == 0) continue;
    char p[32], r[32], f1[32], f2[32];
    printf("  %3d %-20s %s %s %s %s %16lld %16lld\n", k, dataset_class_name(ds, k),
           score_text(p, sizeof p, s.precision, 9), score_text(r, sizeof r, s.recall, 6),
           score_text(f1, sizeof f1, s.f1, 6), score_text(f2, sizeof f2, s.f2, 6),
           (long long)s.truth, (long long)s.predicted);
  }
}

/* One K x K percentage table: rows = truth (index and name), columns = prediction (index). */
static void print_percent_table(const char *title, const double *percent, int classes,
                                fp_dataset *ds) {
  printf("%s\n  %-24s", title, "truth \\ predicted");
  for (int j = 0; j < classes; j++) printf(" %6d", j);
  printf("\n");
  for (int i = 0; i < classes; i++) {
    printf("  %3d %-20s", i, dataset_class_name(ds, i));
    for (int j = 0; j < classes; j++) {
      double v = percent[(size_t)i * classes + j];
      if (isnan(v))
        printf(" %6s", "-");
      else
        printf(" %6.2f", v);
    }
    printf("\n");
  }
}

static void print_confusion(const confusion *c, const double *row, const double *column,
                            fp_dataset *ds, const char *confusion_path) {
  if (c->classes > PRINTED_MATRIX_CLASSES) {
    printf("confusion matrices not printed (%d classes, more than %d): ", c->classes,
           PRINTED_MATRIX_CLASSES);
    if (confusion_path)
      printf("counts, row %% and column %% are in %s\n", confusion_path);
    else
      printf("write them with --confusion OUT.csv or OUT.h5\n");
    return;
  }
  print_percent_table("confusion_row_percent (recall view: of the pixels of true class i, the % "
                      "predicted j):",
                      row, c->classes, ds);
  print_percent_table("confusion_column_percent (precision view: of the pixels predicted j, the % "
                      "whose truth is i):",
                      column, c->classes, ds);
}

/* A CSV field, quoted (RFC 4180) when it holds a comma, a quote or a line break. */
static void csv_text(FILE *f, const char *text) {
  if (!strpbrk(text, ",\"\r\n")) {
    fputs(text, f);
    return;
  }
  fputc('"', f);
  for (const char *p = text; *p; p++) {
    if (*p == '"') fputc('"', f);
    fputc(*p, f);
  }
  fputc('"', f);
}

/* One block: a header row (title, then the class names), then per truth class its name and K
 * cells: counts, or percentages with 6 decimals (empty where undefined). */
static void csv_block(FILE *f, const char *title, int classes, const char *const *names,
                      const int64_t *counts, const double *percent) {
  csv_text(f, title);
  for (int k = 0; k < classes; k++) {
    fputc(',', f);
    csv_text(f, names[k]);
  }
  fputc('\n', f);
  for (int i = 0; i < classes; i++) {
    csv_text(f, names[i]);
    for (int j = 0; j < classes; j++) {
      size_t cell = (size_t)i * classes + j;
      fputc(',', f);
      if (counts)
        fprintf(f, "%lld", (long long)counts[cell]);
      else if (!isnan(percent[cell]))
        fprintf(f, "%.6f", percent[cell]);
    }
    fputc('\n', f);
  }
}

static void write_confusion_csv(const char *path, const confusion *c, const char *const *names,
                                const double *row, const double *column) {
  char temporary[PATH_MAX + 8];
  catalog_begin_temporary(path, temporary, sizeof temporary);
  FILE *f = fopen(temporary, "w");
  FP_CHECK(f, "--confusion: cannot create %s: %s", temporary, strerror(errno));
  csv_block(f, "counts", c->classes, names, c->counts, NULL);
  fputc('\n', f);
  csv_block(f, "row_percent", c->classes, names, NULL, row);
  fputc('\n', f);
  csv_block(f, "column_percent", c->classes, names, NULL, column);
  FP_CHECK(fflush(f) == 0 && !ferror(f), "--confusion: cannot write %s: %s", temporary,
           strerror(errno));
  FP_CHECK(fclose(f) == 0, "--confusion: cannot write %s: %s", temporary, strerror(errno));
  catalog_commit_temporary(temporary, path);
}

static void h5_matrix(hid_t file, const char *name, hid_t file_type, hid_t memory_type, int classes,
                      const void *data) {
  hsize_t dims[2] = {(hsize_t)classes, (hsize_t)classes};
  hid_t space = H5Screate_simple(2, dims, NULL);
  H5_CHECK(space);
  hid_t set = H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5_CHECK(set);
  H5_CHECK(H5Dwrite(set, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
  H5_CHECK(H5Dclose(set));
  H5_CHECK(H5Sclose(space));
}

/* What the matrices were computed from, as attributes of the HDF5 file. */
typedef struct evaluation_source {
  const char *checkpoint, *data, *split;
  long images;
} evaluation_source;

static void write_confusion_h5(const char *path, const confusion *c, const char *const *names,
                               const double *row, const double *column,
                               const evaluation_source *source) {
  char temporary[PATH_MAX + 8];
  catalog_begin_temporary(path, temporary, sizeof temporary);
  hid_t file = H5Fcreate(temporary, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) FP_FATAL("--confusion: cannot create %s (HDF5's error stack is above)", temporary);
  h5_matrix(file, "counts", H5T_STD_I64LE, H5T_NATIVE_INT64, c->classes, c->counts);
  h5_matrix(file, "row_percent", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, c->classes, row);
  h5_matrix(file, "column_percent", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, c->classes, column);
  hid_t type = H5Tcopy(H5T_C_S1);
  H5_CHECK(type);
  H5_CHECK(H5Tset_size(type, H5T_VARIABLE));
  H5_CHECK(H5Tset_cset(type, H5T_CSET_UTF8));
  hsize_t dims[1] = {(hsize_t)c->classes};
  hid_t space = H5Screate_simple(1, dims, NULL);
  H5_CHECK(space);
  hid_t set = H5Dcreate2(file, "class_names", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5_CHECK(set);
  H5_CHECK(H5Dwrite(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, names));
  H5_CHECK(H5Dclose(set));
  H5_CHECK(H5Sclose(space));
  H5_CHECK(H5Tclose(type));
  h5_write_attr_string(file, "checkpoint", source->checkpoint);
  h5_write_attr_string(file, "dataset", source->data);
  h5_write_attr_string(file, "split", source->split);
  h5_write_attr_long(file, "images", source->images);
  h5_write_attr_long(file, "ignore_label", 255);
  H5_CHECK(H5Fflush(file, H5F_SCOPE_GLOBAL));
  H5_CHECK(H5Fclose(file));
  catalog_commit_temporary(temporary, path);
}

static void report_confusion(const confusion *c, fp_dataset *ds, const char *path,
                             enum confusion_format format, const evaluation_source *source) {
  size_t cells = (size_t)c->classes * c->classes;
  double *row = fp_malloc(cells * sizeof *row), *column = fp_malloc(cells * sizeof *column);
  confusion_row_percent(c, row);
  confusion_column_percent(c, column);
  print_class_scores(c, ds);
  print_confusion(c, row, column, ds, path);
  if (format != CONFUSION_NONE) {
    const char **names = fp_malloc((size_t)c->classes * sizeof *names);
    for (int k = 0; k < c->classes; k++) names[k] = dataset_class_name(ds, k);
    if (format == CONFUSION_CSV)
      write_confusion_csv(path, c, names, row, column);
    else
      write_confusion_h5(path, c, names, row, column, source);
    printf("confusion_file %s\n", path);
    free(names);
  }
  fflush(stdout);
  free(row);
  free(column);
}

static int parse_split(const char *name) {
  if (!strcmp(name, "train")) return 0;
  if (!strcmp(name, "val")) return 1;
  if (!strcmp(name, "test")) return 2;
  if (!strcmp(name, "all")) return -1;
  fprintf(stderr, "error: --split must be train, val, test or all, not '%s'\n", name);
  exit(2);
}

typedef struct evaluate_args {
  const char *checkpoint_path, *data_path, *split_name;
  const char *prior_csv, *prior_table, *confusion_path;
  const char *backend_name, *precision_name;
  int batch, limit, threads, ground_truth;
} evaluate_args;

static evaluate_args parse_args(int argc, char **argv) {
  evaluate_args a = {
      .split_name = "val", .backend_name = "auto", .precision_name = "auto", .batch = 8};
  cli_option options[] = {
      {"--checkpoint", CLI_STRING, &a.checkpoint_path, 0, 0},
      {"--data", CLI_STRING, &a.data_path, 0, 0},
      {"--split", CLI_STRING, &a.split_name, 0, 0},
      {"--batch", CLI_INT, &a.batch, 1, 4096},
      {"--limit", CLI_INT, &a.limit, 0, 1 << 30},
      {"--threads", CLI_INT, &a.threads, 0, 1024},
      {"--prior-csv", CLI_STRING, &a.prior_csv, 0, 0},
      {"--prior-table", CLI_STRING, &a.prior_table, 0, 0},
      {"--backend", CLI_STRING, &a.backend_name, 0, 0},
      {"--precision", CLI_STRING, &a.precision_name, 0, 0},
      {"--confusion", CLI_STRING, &a.confusion_path, 0, 0},
      {"--ground-truth-injection", CLI_FLAG, &a.ground_truth, 0, 0},
  };
  if (cli_parse(argc, argv, options, sizeof options / sizeof options[0], usage) != argc ||
      !a.checkpoint_path || !a.data_path) {
    fprintf(stderr, "error: --checkpoint and --data are required\n");
    usage(stderr);
    exit(2);
  }
  if (!a.prior_csv != !a.prior_table) {
    fprintf(stderr, "error: --prior-csv and --prior-table go together\n");
    usage(stderr);
    exit(2);
  }
  return a;
}

/* The dataset must have masks and the checkpoint's classes and image size. */
static void check_dataset_fits(fp_dataset *ds, const char *data_path, const checkpoint_info *info,
                               const char *checkpoint_path) {
  FP_CHECK(dataset_has_masks(ds), "%s: dataset has no /masks to evaluate against", data_path);
  if (dataset_num_classes(ds) != info->classes)
    FP_FATAL("%s: dataset has %d classes but checkpoint %s (field 'classes') has %d", data_path,
             dataset_num_classes(ds), checkpoint_path, info->classes);
  if (dataset_height(ds) != info->height || dataset_width(ds) != info->width)
    FP_FATAL("%s: images are %dx%d but checkpoint %s was trained at %dx%d (fields height, width)",
             data_path, dataset_height(ds), dataset_width(ds), checkpoint_path, info->height,
             info->width);
}

static void print_segmentation_metrics(const confusion *conf, const fp_dataset *ds,
                                       const checkpoint_info *info, const evaluate_args *a,
                                       long images) {
  seg_metrics metrics = confusion_metrics(conf);
  printf("checkpoint %s (%s, epoch %ld) on %s split %s, %ld images\n", a->checkpoint_path,
         unet_arch_name(info->arch), info->epoch, a->data_path, a->split_name, images);
  printf("pixel_accuracy %.4f\nmiou_excluding_background %.4f (%d classes)\n"
         "miou_including_background %.4f\nforeground_mask_iou %.4f\n",
         metrics.pixel_accuracy, metrics.miou_foreground, metrics.classes_counted, metrics.miou_all,
         metrics.mask_iou);
  printf("per-class IoU:\n");
  for (int k = 0; k < info->classes; k++) {
    double iou = confusion_class_iou(conf, k);
    if (iou >= 0) printf("  %3d %-20s %.4f\n", k, dataset_class_name(ds, k), iou);
  }
}

static void report_branches(branch_evaluation *branch_eval, const confusion *conf,
                            const fp_dataset *ds, int classes) {
  const char **names = fp_malloc((size_t)classes * sizeof *names);
  for (int k = 0; k < classes; k++) names[k] = dataset_class_name(ds, k);
  branch_evaluation_report(branch_eval, conf, names, stdout);
  free(names);
}

int main(int argc, char **argv) {
  evaluate_args a = parse_args(argc, argv);
  int split = parse_split(a.split_name);
  enum confusion_format confusion_format = confusion_format_of(a.confusion_path);
  if (a.threads > 0) omp_set_num_threads(a.threads);

  checkpoint_info info = checkpoint_peek(a.checkpoint_path);
  fp_dataset *ds = dataset_open(a.data_path);
  check_dataset_fits(ds, a.data_path, &info, a.checkpoint_path);

  runtime rt = runtime_open(a.backend_name, a.precision_name, "command line", 0);
  const backend *be = rt.be;
  char where[400];
  runtime_describe(&rt, where, sizeof where);
  printf("evaluate: %s\n", where);
  unet_config model_config = {.arch = info.arch,
                              .classes = info.classes,
                              .batch = a.batch,
                              .height = info.height,
                              .width = info.width,
                              .compute = rt.compute,
                              .mode = UNET_INFERENCE,
                              .branches = info.branches};
  unet *m = unet_create(be, &model_config, 0);
  checkpoint_load(a.checkpoint_path, m, NULL, NULL);
  loader_config lc = {.path = a.data_path,
                      .split = split,
                      .batch_size = a.batch,
                      .world_size = 1,
                      .limit = a.limit,
                      .keep_partial = 1,
                      .pad_label = 255};
  loader *ld = loader_open(&lc);
  size_t pixels = (size_t)a.batch * info.height * info.width;
  uint8_t *predictions = be->alloc(FP_U8, pixels), *host_predictions = fp_malloc(pixels);
  prior_evaluation pe = {0};
  if (a.prior_table) prior_evaluation_open(&pe, a.prior_table, a.prior_csv, a.data_path, ds, m);
  confusion conf;
  confusion_init(&conf, info.classes);
  branch_evaluation branch_eval = {0};
  int branches = info.branches.mode != BRANCHES_NONE;
  FP_CHECK(branches || !a.ground_truth,
           "--ground-truth-injection: checkpoint %s has no branches (attribute 'branches')",
           a.checkpoint_path);
  if (branches) branch_evaluation_init(&branch_eval, m, a.ground_truth);
  progress prog;
  progress_start(&prog, "evaluate", (long)loader_images(ld));
  loader_start_epoch(ld, 0);
  loader_batch b;
  while (loader_next(ld, &b)) {
    be->tensor_from_nchw(&m->input, b.images);
    unet_forward(m, 0);
    be->argmax_channels(&m->logits, predictions, NULL);
    be->download(host_predictions, predictions, FP_U8, pixels);
    confusion_add(&conf, b.masks, host_predictions, pixels, 255);
    if (pe.prior) prior_evaluation_batch(&pe, m, &b, predictions, host_predictions);
    if (branches) branch_evaluation_batch(&branch_eval, m, &b, 255);
    progress_advance(&prog, b.count);
  }
  progress_print(&prog, "done");
  print_segmentation_metrics(&conf, ds, &info, &a, prog.done);
  evaluation_source source = {a.checkpoint_path, a.data_path, a.split_name, prog.done};
  report_confusion(&conf, ds, a.confusion_path, confusion_format, &source);
  if (pe.prior) prior_evaluation_report(&pe, &conf, ds, a.prior_table, a.prior_csv);
  if (branches) {
    report_branches(&branch_eval, &conf, ds, info.classes);
    branch_evaluation_free(&branch_eval, m);
  }
  dataset_close(ds);
  loader_close(ld);
  confusion_free(&conf);
  be->release(predictions);
  free(host_predictions);
  unet_destroy(m);
  return 0;
}
