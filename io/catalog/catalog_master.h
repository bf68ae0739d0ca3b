/* The master file of a parse_catalog run: the file analysts open. Every
 * per-image dataset of the shards (catalog_shard.h) and /failed appear in it as
 * HDF5 virtual datasets over the shard files, in catalog order, plus the
 * catalog-level tables and the run's attributes (docs/parse_catalog.md). */
#ifndef FP_CATALOG_MASTER_H
#define FP_CATALOG_MASTER_H

#include <hdf5.h>
#include <stdint.h>

#include "catalog_shard.h"

#define CATALOG_SHARD_NAME_LENGTH 256

typedef struct catalog_shard_entry {
  char file[CATALOG_SHARD_NAME_LENGTH]; /* relative to the master file's directory */
  int64_t first_row, rows;              /* master rows [first_row, first_row + rows) */
  int64_t first_failure, failures;      /* master /failed records */
} catalog_shard_entry;

/* The HDF5 compound type of /shard_table, matching catalog_shard_entry (the caller closes it). */
hid_t catalog_shard_entry_type(void);

typedef struct catalog_totals {
  int64_t *image_count; /* [K] images where the class is present */
  int64_t *pixel_count; /* [K] model-resolution photo pixels of the class */
  double *fraction_sum; /* [K] sum over images of pixel_fraction */
} catalog_totals;

typedef struct catalog_run_counts {
  int64_t images, failed, reused;                  /* master rows, /failed records, rows copied */
  int64_t new_images, changed, unchanged, removed; /* against the previous run */
} catalog_run_counts;

typedef struct catalog_master_info {
  catalog_layout layout;
  char *const *class_names;          /* [K] */
  const uint8_t (*class_colours)[3]; /* [K] overlay colours of the previews */
  const char *arch, *checkpoint;     /* model and checkpoint path */
  uint64_t checkpoint_hash;          /* FNV-1a 64 of the loaded parameters and buffers */
  uint64_t result_fingerprint;       /* what a result depends on besides its image */
  const char *job_id, *job_config, *catalog, *prior_table, *prior_csv, *previous_run;
  const char *created; /* UTC, ISO 8601 */
  catalog_run_counts counts;
  catalog_totals totals;
} catalog_master_info;

/* Rows [first, first + count) of the master's /ids, /catalog_index,
 * /pixel_fraction ([count][classes]) and /masks ([count][height][width],
 * decompressed), read through its virtual datasets. */
void catalog_master_read(const char *path, int64_t first, int64_t count,
                         char (*ids)[CATALOG_ID_LENGTH], int64_t *catalog_index,
                         float *pixel_fraction, uint8_t *masks);

/* Writes path (via path.tmp, durably). Shard files are opened from path's
 * directory. */
void catalog_master_write(const char *path, const catalog_master_info *info,
                          const catalog_shard_entry *shards, int shard_count);

#endif
