/* Training/evaluation batches from a dataset file, sharded across ranks and
 * prefetched by a background thread (double buffering). */
#ifndef FP_LOADER_H
#define FP_LOADER_H

#include <stdint.h>

#include "mask_boxes.h"

typedef struct loader_config {
  const char *path;
  int split; /* 0 train, 1 val, 2 test, -1 all images */
  int batch_size, rank, world_size;
  uint64_t seed;
  int shuffle, augment; /* 0/1 */
  int64_t limit;        /* use only the first `limit` images of the split (0 = all) */
} loader_config;

typedef struct loader_batch {
  int count;        /* images in this batch (== batch_size) */
  float *images;    /* [B,3,H,W] NCHW, (x/255 - mean)/std, ImageNet mean and std */
  uint8_t *masks;   /* [B,H,W] */
  int64_t *indices; /* dataset row of each image */
} loader_batch;

typedef struct loader loader;

/* FP_FATAL if the file has no /masks or the configuration is invalid. */
loader *loader_open(const loader_config *cfg);
int64_t loader_images(const loader *l);            /* images in the split after `limit` */
int64_t loader_batches_per_epoch(const loader *l); /* floor(n / (batch_size*world_size)) */
void loader_start_epoch(loader *l, int epoch);     /* starts prefetching this epoch */
/* 1 with a batch (buffers owned by the loader, valid until the next call), 0 at epoch end. */
int loader_next(loader *l, loader_batch *out);
void loader_close(loader *l);

#endif
