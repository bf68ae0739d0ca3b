/* Throughput of the training reader (io/dataset/loader.h) as train uses it: shuffled
 * batches of the train split with augmentation on, prefetched by the
 * loader's thread, the caller taking each batch and doing nothing else. Not
 * a test; the figures are in results/ingest_reader_bench.md.
 * Usage: bench_loader DATASET.h5 [BATCH [EPOCHS [AUGMENT]]] (defaults 8, 3, 1; AUGMENT 1 is
 * every transform on, the augment.preset "all" the figures were measured with) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "loader.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  FP_CHECK(argc >= 2 && argc <= 5, "usage: bench_loader DATASET.h5 [BATCH [EPOCHS [AUGMENT]]]");
  int batch = argc > 2 ? atoi(argv[2]) : 8, epochs = argc > 3 ? atoi(argv[3]) : 3;
  int augment = argc > 4 ? atoi(argv[4]) : 1;
  FP_CHECK(batch > 0 && epochs > 0 && (augment == 0 || augment == 1), "bad arguments");
  augment_settings all;
  augment_preset("all", &all);
  loader_config cfg = {.path = argv[1],
                       .batch_size = batch,
                       .world_size = 1,
                       .seed = 1,
                       .shuffle = 1,
                       .augment = augment ? &all : NULL};
  loader *l = loader_open(&cfg);
  printf("%s: %lld train images, batch %d, augment %d, %lld batches per epoch\n", argv[1],
         (long long)loader_images(l), batch, augment, (long long)loader_batches_per_epoch(l));
  double best = 0, total_images = 0, total_seconds = 0;
  for (int epoch = 0; epoch < epochs; epoch++) {
    double start = now();
    loader_start_epoch(l, epoch);
    loader_batch b;
    int64_t images = 0;
    while (loader_next(l, &b)) images += b.count;
    double seconds = now() - start, rate = images / seconds;
    printf("epoch %d: %lld images in %.2f s, %.1f img/s\n", epoch, (long long)images, seconds,
           rate);
    if (rate > best) best = rate;
    total_images += (double)images;
    total_seconds += seconds;
  }
  printf("loader_img_s=%.1f (all epochs) best_epoch_img_s=%.1f\n", total_images / total_seconds,
         best);
  loader_close(l);
  return 0;
}
