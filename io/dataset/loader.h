/* Training/evaluation batches from a dataset file, sharded across ranks and
 * prefetched by a background thread (double buffering). */
#ifndef FP_LOADER_H
#define FP_LOADER_H

#include <stdint.h>

#include "augment.h"

typedef struct loader_config {
  const char *path;
  int split; /* 0 train, 1 val, 2 test, -1 all images */
  int batch_size, rank, world_size;
  uint64_t seed;
  int shuffle;                     /* 0/1 */
  const augment_settings *augment; /* NULL: no augmentation; else copied by loader_open */
  int64_t limit;                   /* use only the first `limit` images of the split (0 = all) */
  /* 0: every batch is full and the last partial global batch is dropped (training); 1: the
   * epoch covers every image, so the last batch may hold fewer (count < batch_size) and its
   * unused slots are zero images whose masks are all pad_label (evaluation). */
  int keep_partial;
  uint8_t pad_label;
  /* NULL or a tag-only file (`ingest`'s FILE_tags.h5: photos with image-level tags, no mask) of
   * the same size and classes: its rows of `split`, after tags_limit (0 = all), join the epoch
   * with masks all DATASET_IGNORE_LABEL and their tags in the batch (training the Extended
   * U-Net's class branch on them). */
  const char *tags_path;
  int64_t tags_limit;
  /* Allocator of the batches' image buffers (NULL: malloc and free): a backend's host_alloc and
   * host_release, so that a device copies them without waiting (page-locked memory). */
  void *(*image_alloc)(size_t bytes);
  void (*image_release)(void *p);
} loader_config;

typedef struct loader_batch {
  int count;        /* images in this batch: batch_size, or fewer in a kept partial batch */
  float *images;    /* [B,3,H,W] NCHW, (x/255 - mean)/std, ImageNet mean and std */
  uint8_t *masks;   /* [B,H,W] */
  int64_t *indices; /* dataset row of each image (of the tag-only file for a tag-only one) */
  /* with a tag-only file only, else NULL: */
  uint8_t *tag_only; /* [B] 1 for an image of the tag-only file */
  uint8_t *tags;     /* [B,K] its tags; 0 for the others */
} loader_batch;

typedef struct loader loader;

/* FP_FATAL if the file has no /masks, the tag-only file has masks or another size or other
 * classes, or the configuration is invalid. */
loader *loader_open(const loader_config *cfg);
int64_t loader_images(const loader *l);          /* images in the split after `limit` */
int64_t loader_tag_only_images(const loader *l); /* of those, from the tag-only file */
/* floor(n / (batch_size*world_size)), or the ceiling with keep_partial */
int64_t loader_batches_per_epoch(const loader *l);
void loader_start_epoch(loader *l, int epoch); /* starts prefetching this epoch */
/* The same, skipping the epoch's first `first_batch` batches (resuming mid-epoch). */
void loader_start_epoch_at(loader *l, int epoch, int64_t first_batch);
/* 1 with a batch (buffers owned by the loader, valid until the next call), 0 at epoch end. */
int loader_next(loader *l, loader_batch *out);
void loader_close(loader *l);

#endif
