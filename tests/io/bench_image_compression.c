/* Measures whether compressing /images pays for read speed: rewrites the
 * images of an ingested dataset with no compression, deflate and zstd, then
 * times dataset_read_image over each copy (page cache warm, as during
 * training). Not a test; the figures are in docs/dataset.md.
 * Usage: bench_image_compression DATASET.h5 WORK_DIR */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "check.h"
#include "dataset.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  FP_CHECK(argc == 3, "usage: bench_image_compression DATASET.h5 WORK_DIR");
  fp_dataset *source = dataset_open(argv[1]);
  int64_t n = dataset_count(source);
  int h = dataset_height(source), w = dataset_width(source), k = dataset_num_classes(source);
  char **names = fp_calloc((size_t)k, sizeof *names);
  for (int c = 0; c < k; c++) names[c] = (char *)dataset_class_name(source, c);
  uint8_t *image = fp_malloc((size_t)h * w * 3), *tags = fp_malloc((size_t)k);
  const char *labels[3] = {"none", "deflate-1", "zstd-3"};
  dataset_compression kinds[3] = {DATASET_COMPRESSION_NONE, DATASET_COMPRESSION_DEFLATE,
                                  DATASET_COMPRESSION_ZSTD};
  printf("%lld images of %dx%d\n", (long long)n, h, w);
  for (int m = 0; m < 3; m++) {
    char path[2048];
    snprintf(path, sizeof path, "%s/bench_%s.h5", argv[2], labels[m]);
    dataset_info info = {.height = h,
                         .width = w,
                         .num_classes = k,
                         .class_names = names,
                         .label_map = "bench",
                         .source = "bench",
                         .tool_version = "bench",
                         .image_compression = kinds[m]};
    dataset_writer *writer = dataset_create(path, &info);
    double write_start = now();
    for (int64_t i = 0; i < n; i++) {
      dataset_read_image(source, i, image);
      dataset_read_tags(source, i, tags);
      dataset_item item = {.id = "x",
                           .image = image,
                           .tags = tags,
                           .source_height = h,
                           .source_width = w,
                           .box = {1, 0, 0, h, w}};
      dataset_append(writer, &item);
    }
    dataset_split_options split = {0.1, 0.1, 1};
    dataset_commit(writer, &split, NULL);
    double write_seconds = now() - write_start;
    fp_dataset *copy = dataset_open(path);
    double best = 1e30;
    for (int pass = 0; pass < 3; pass++) {
      double start = now();
      for (int64_t i = 0; i < n; i++) dataset_read_image(copy, i, image);
      double seconds = now() - start;
      if (seconds < best) best = seconds;
    }
    dataset_close(copy);
    struct stat st;
    FP_CHECK(stat(path, &st) == 0, "%s: stat", path);
    printf("%-10s file %7.1f MB  write %.2f ms/img  read %.3f ms/img (best of 3 passes)\n",
           labels[m], st.st_size / 1e6, 1e3 * write_seconds / n, 1e3 * best / n);
    remove(path);
  }
  free(image);
  free(tags);
  free(names);
  dataset_close(source);
  return 0;
}
