/* One rank's work on one chunk of a catalog (parse_catalog): for each image,
 * hash it and compare with the previous run; copy an unchanged result or
 * decode and letterbox the photo (a batch's worth ahead, while the backend
 * computes the batch queued last); run the model in batches (category prior on
 * the logits, argmax, softmax, per-class sums); finish the per-class
 * statistics and compress the masks in threads; write the chunk's part file,
 * durably. Images that cannot be read or decoded go to the part's /failed with
 * the reason. */
#ifndef FP_CATALOG_CHUNK_H
#define FP_CATALOG_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "catalog_previous.h"
#include "catalog_prior.h"
#include "catalog_shard.h"
#include "catalog_source.h"
#include "unet.h"

typedef struct chunk_setup {
  catalog *images;
  catalog_layout layout;
  int64_t chunk_size;
  category_prior *prior;      /* NULL: no prior */
  int inject_prior;           /* inject the rules' allowed classes (injected branches) */
  catalog_previous *previous; /* NULL: no previous run */
  int reuse_previous;         /* 1: unchanged images are copied from the previous run */
  const char *parts_directory;
  int graphs; /* replay the model's pass as a device graph where it can be (pass_graph.h) */
} chunk_setup;

typedef struct stage_seconds {
  double decode; /* read, hash, decode, letterbox, normalise */
  double reuse;  /* copy unchanged results from the previous run */
  double model;  /* forward pass, prior, argmax, softmax, copies to the host */
  double stats;  /* per-class statistics, source-size masks */
  double zstd;   /* compressing the masks */
  double write;  /* the part file (HDF5, fsync, rename) */
} stage_seconds;

typedef struct chunk_counts {
  int64_t ok, failed;                     /* rows written, /failed records */
  int64_t computed, reused;               /* rows by the model, rows copied */
  int64_t new_images, changed, unchanged; /* against the previous run (all new without one) */
  int64_t mask_bytes;                     /* compressed /masks of the computed rows */
} chunk_counts;

typedef struct chunk_engine chunk_engine;

/* model: created for this layout's size and class count, weights loaded. */
chunk_engine *chunk_engine_create(const chunk_setup *setup, unet *model);
/* Processes chunk `chunk`, adding the time of each stage to *seconds. */
chunk_counts chunk_engine_run(chunk_engine *e, int64_t chunk, stage_seconds *seconds);
void chunk_engine_free(chunk_engine *e);

/* parts_directory/chunk-NNNNNNNNNN.h5 */
void catalog_part_path(const char *parts_directory, int64_t chunk, char *path, size_t size);

#endif
