/* The HDF5 dataset of resized photos, masks and tags (schema in
 * docs/dataset.md): a writer for `ingest` and the reader that train and
 * evaluate use. */
#ifndef FP_DATASET_H
#define FP_DATASET_H

#include <stdint.h>

#include "resize.h"

#define DATASET_SCHEMA_VERSION 1
#define DATASET_ID_LENGTH 64      /* /ids: fixed-length strings, NUL-terminated */
#define DATASET_REASON_LENGTH 512 /* /skipped reason strings */

/* ---- reader: one thread at a time per handle; every HDF5 call in this
 * module holds one process-wide lock (HDF5 here is not thread-safe). ---- */

typedef struct fp_dataset fp_dataset;

/* FP_FATAL naming the file and the field on a missing dataset or attribute,
 * a wrong rank, shape or dtype, or class counts that disagree. */
fp_dataset *dataset_open(const char *path);
void dataset_close(fp_dataset *ds);
int64_t dataset_count(const fp_dataset *ds);
int dataset_height(const fp_dataset *ds);
int dataset_width(const fp_dataset *ds);
int dataset_num_classes(const fp_dataset *ds);
const char *dataset_class_name(const fp_dataset *ds, int k);
int dataset_has_masks(const fp_dataset *ds);
int dataset_split_of(const fp_dataset *ds, int64_t i); /* 0 train 1 val 2 test */
const char *dataset_path(const fp_dataset *ds);
/* the /masks value of unlabelled pixels (padding, classes a label map ignores) */
#define DATASET_IGNORE_LABEL 255
void dataset_read_image(fp_dataset *ds, int64_t i, uint8_t *hwc); /* H*W*3 */
/* H*W labels; a label that is neither a class (< num_classes) nor DATASET_IGNORE_LABEL is a
 * fatal error naming the file, the row and the pixel. */
void dataset_read_mask(fp_dataset *ds, int64_t i, uint8_t *hw);
void dataset_read_tags(fp_dataset *ds, int64_t i, uint8_t *tags); /* num_classes */

/* ---- writer: items are appended in order; the file is built as
 * <path>.tmp and renamed to <path> by dataset_commit only. If the program
 * stops before (FP_FATAL, exit, SIGINT, SIGTERM, SIGHUP) the temporary file
 * is removed, so no file is ever left under <path> half written. ---- */

typedef enum dataset_compression {
  DATASET_COMPRESSION_NONE,
  DATASET_COMPRESSION_DEFLATE, /* gzip level 1 */
  DATASET_COMPRESSION_ZSTD,    /* filter 32015, level H5ZSTD_DEFAULT_LEVEL */
} dataset_compression;

typedef struct dataset_info {
  int height, width, num_classes;
  char *const *class_names; /* [num_classes] */
  const char *label_map, *source, *tool_version;
  int has_masks;
  dataset_compression image_compression; /* /images; /masks always use zstd */
  int has_garments;  /* /items, /pair_id, /source (DeepFashion2's retrieval data) */
  int has_instances; /* /instances, /attribute_ids (iMaterialist's attributes) */
} dataset_info;

/* One garment of a photo with its box, a row of /items (DeepFashion2's
 * "itemN"; docs/dataset.md describes each field). */
typedef struct dataset_garment {
  int32_t item; /* N of itemN */
  int32_t category_id, style, scale, occlusion, zoom_in, viewpoint;
  float source_box[4]; /* x1, y1, x2, y2 in the photo's pixels */
  float box[4];        /* the same in the letterboxed H x W image */
} dataset_garment;

/* One annotated instance of a photo (an iMaterialist train.csv row), a row of /instances: its
 * category before the label map and how many of the item's attribute ids are its own (the
 * item's instances take the ids in order). */
typedef struct dataset_instance {
  int32_t category_id;
  int32_t attribute_count;
} dataset_instance;

typedef struct dataset_item {
  const char *id;        /* source name, shorter than DATASET_ID_LENGTH */
  const uint8_t *image;  /* [H,W,3] */
  const uint8_t *mask;   /* [H,W]; only with has_masks */
  const uint8_t *tags;   /* [num_classes] 0/1 */
  int32_t source_height; /* the original photo's size */
  int32_t source_width;
  letterbox box;
  /* only with has_garments: */
  const dataset_garment *garments; /* [garment_count] */
  int32_t garment_count;
  int32_t pair_id;
  int32_t photo_source; /* 0 shop, 1 user */
  /* only with has_instances: */
  const dataset_instance *instances; /* [instance_count] */
  int32_t instance_count;
  const int32_t *attribute_ids; /* [sum of the instances' attribute_count] */
} dataset_item;

typedef struct dataset_split_options {
  double val_fraction, test_fraction;
  uint64_t seed;
} dataset_split_options;

typedef struct dataset_writer dataset_writer;

/* The default image compression: the one that read fastest here (docs/dataset.md). */
dataset_compression dataset_default_image_compression(void);
dataset_writer *dataset_create(const char *path, const dataset_info *info);
void dataset_append(dataset_writer *w, const dataset_item *item);
void dataset_add_skipped(dataset_writer *w, const char *id, const char *reason);
int64_t dataset_written(const dataset_writer *w);
/* Assigns /split (split_assign over the tags), writes /split, /skipped and the
 * attributes and closes the file, still under its temporary name (PATH.tmp.<pid>); frees w.
 * split_counts[3], if not NULL, receives the train/val/test sizes. */
void dataset_finish(dataset_writer *w, const dataset_split_options *split, int64_t split_counts[3]);
/* Moves every dataset closed so far into place (fsync, rename, fsync of the directory), all or
 * none as far as the process is concerned: until this runs, a failure removes them all. */
void dataset_publish(void);
/* dataset_finish then dataset_publish. */
void dataset_commit(dataset_writer *w, const dataset_split_options *split, int64_t split_counts[3]);

#endif
