/* Result files of parse_catalog: one row per parsed image and one /failed
 * record per image that could not be parsed. The same schema serves the
 * per-chunk part files, the per-rank shard files and (through virtual datasets)
 * the master file; every dataset is documented in docs/parse_catalog.md.
 *
 * Masks are stored zstd-compressed (filter 32015), one HDF5 chunk per image;
 * they are compressed by the caller's threads (catalog_rows_set_mask) and
 * written with H5Dwrite_chunk, so HDF5 does not compress them again, and copied
 * between files as raw chunks (H5Dread_chunk / H5Dwrite_chunk). Every HDF5 call
 * here must come from one thread at a time. */
#ifndef FP_CATALOG_SHARD_H
#define FP_CATALOG_SHARD_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog_prior.h"
#include "catalog_source.h"
#include "catalog_stats.h"

typedef struct catalog_layout {
  int height, width, classes;      /* model resolution, class count */
  int source_masks;                /* 1: /masks_source is stored */
  int source_height, source_width; /* its frame: the largest photo size accepted */
  int zstd_level;
} catalog_layout;

/* A block of result rows in memory, one array per dataset. */
typedef struct catalog_rows {
  catalog_layout layout;
  int64_t capacity, count;
  char (*ids)[CATALOG_ID_LENGTH];
  uint64_t *content_hash;
  int64_t *catalog_index;
  int32_t *source_size; /* [n][2] */
  float *letterbox;     /* [n][5]: scale, offset_y, offset_x, resized_h, resized_w */
  char (*product_type)[PRIOR_TYPE_LENGTH];
  uint8_t *reused;
  float *pixel_fraction;  /* [n][K] */
  int16_t *bbox;          /* [n][K][4] */
  float *mean_confidence; /* [n][K] */
  float *mean_rgb;        /* [n][K][3] */
  float *mean_lab;        /* [n][K][3] */
  uint8_t *colour;        /* [n][K] */
  uint8_t **mask_zstd;    /* [n]: compressed [H,W] (malloc'd) */
  size_t *mask_bytes;
  uint8_t **source_mask_zstd; /* [n]: compressed [source_height, source_width] */
  size_t *source_mask_bytes;
} catalog_rows;

typedef struct catalog_failure {
  char id[CATALOG_ID_LENGTH];
  uint64_t content_hash; /* 0 when the file could not be read */
  int64_t catalog_index;
  char reason[CATALOG_REASON_LENGTH];
} catalog_failure;

void catalog_rows_init(catalog_rows *rows, const catalog_layout *layout, int64_t capacity);
void catalog_rows_free(catalog_rows *rows);
/* Row r's statistics arrays, for catalog_stats_from_sums. */
image_stats catalog_rows_stats(catalog_rows *rows, int64_t r);
/* Compresses mask [H*W] (or [source_height*source_width]) into row r. Thread-safe
 * for distinct rows. */
void catalog_rows_set_mask(catalog_rows *rows, int64_t r, const uint8_t *mask);
void catalog_rows_set_source_mask(catalog_rows *rows, int64_t r, const uint8_t *mask);
/* Row `from_row` of `from` into row `to_row` of `to` (same layout), masks included. */
void catalog_rows_copy(catalog_rows *to, int64_t to_row, const catalog_rows *from,
                       int64_t from_row);

/* The HDF5 compound type of /failed, matching catalog_failure (the caller closes it). */
hid_t catalog_failure_type(void);

/* The per-image datasets, in file order; /masks_source only with source_masks. */
extern const char *const catalog_row_datasets[];
extern const int catalog_row_dataset_count;

typedef struct catalog_shard_writer catalog_shard_writer;

/* Creates `<path>.tmp` holding `rows` rows and `failures` failure records (the
 * counts are fixed up front). */
catalog_shard_writer *catalog_shard_create(const char *path, const catalog_layout *layout,
                                           int64_t rows, int64_t failures);
/* Writes rows->count rows from rows starting at file row first_row. */
void catalog_shard_write_rows(catalog_shard_writer *w, int64_t first_row, const catalog_rows *rows);
void catalog_shard_write_failures(catalog_shard_writer *w, int64_t first,
                                  const catalog_failure *failures, int64_t count);
/* Closes the file and moves it to its final name, durably (catalog_files.h). */
void catalog_shard_commit(catalog_shard_writer *w);

typedef struct catalog_shard_reader catalog_shard_reader;

/* FP_FATAL naming the file if it is not a result file. */
catalog_shard_reader *catalog_shard_open(const char *path);
int64_t catalog_shard_rows(const catalog_shard_reader *r);
int64_t catalog_shard_failures(const catalog_shard_reader *r);
/* Rows [first, first + count) into out rows [0, count) (out->count = count). */
void catalog_shard_read_rows(catalog_shard_reader *r, int64_t first, int64_t count,
                             catalog_rows *out);
void catalog_shard_read_failures(catalog_shard_reader *r, int64_t first, int64_t count,
                                 catalog_failure *out);
void catalog_shard_close(catalog_shard_reader *r);

#endif
