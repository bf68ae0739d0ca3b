/* The sources `ingest` converts (CCP, iMaterialist, DeepFashion2) behind one
 * interface. A source lists its items, sorted by id, in one or two sets (each
 * becomes one output file) and turns one item into an ingest_buffer;
 * src/cmd/cmd_ingest.c does the rest for all of them: --limit, the split across
 * MPI ranks, writing in id order, progress, --skip-bad, the summary. */
#ifndef FP_INGEST_SOURCE_H
#define FP_INGEST_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "labelmap.h"
#include "resize.h"

#define INGEST_MAX_SETS 2

typedef enum ingest_status {
  INGEST_BAD,      /* reason says why; an error, or skipped with --skip-bad */
  INGEST_OK,       /* written */
  INGEST_EXCLUDED, /* holds a class the label map marks !exclude: left out */
} ingest_status;

/* One processed item as it travels from the rank that decoded it to rank 0:
 * this header, then image [H,W,3], mask [H,W], tags [K], garments [n],
 * instances [m], attribute ids [a] (a = the instances' attribute counts summed). */
typedef struct ingest_header {
  int32_t status; /* ingest_status */
  int32_t source_height, source_width;
  letterbox box;
  int32_t garment_count, pair_id, photo_source;
  int32_t instance_count, attribute_id_count;
  char reason[DATASET_REASON_LENGTH];
} ingest_header;

typedef struct ingest_buffer {
  unsigned char *bytes;
  size_t size;     /* bytes in use: the fixed part, garments, instances and attribute ids */
  size_t capacity; /* bytes allocated */
  size_t fixed_size;
  int height, width, num_classes;
  ingest_header *header;
  uint8_t *image, *mask, *tags;
  dataset_garment *garments;
  dataset_instance *instances;
  int32_t *attribute_ids;
} ingest_buffer;

void ingest_buffer_init(ingest_buffer *b, int height, int width, int num_classes);
void ingest_buffer_free(ingest_buffer *b);
/* Clears the header, the tags, the garments and the instances before the next item. */
void ingest_buffer_reset(ingest_buffer *b);
/* Makes room for a received item of `size` bytes and sets b->size. */
void ingest_buffer_receive_size(ingest_buffer *b, size_t size);
/* Points header, image, ... into bytes again and checks the garment, instance and
 * attribute id counts against the size and each other (after receiving). */
void ingest_buffer_attach(ingest_buffer *b);
/* An item holds garments or instances, not both. */
void ingest_add_garment(ingest_buffer *b, const dataset_garment *garment);
void ingest_add_instance(ingest_buffer *b, int32_t category_id, const int32_t *attribute_ids,
                         int32_t attribute_count);
/* Marks the item bad with the reason (cut to the reason's length); returns -1. */
int ingest_fail(ingest_buffer *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Decodes the JPEG at `path` and letterboxes it into b->image, setting the
 * source size and box. Returns 0, or -1 with the reason set. */
int ingest_read_photo(ingest_buffer *b, const char *path);
/* From a full-resolution mask of mapped labels (source_height x
 * source_width, set by ingest_read_photo): the tags (every class present,
 * however small) and the letterboxed nearest-neighbour mask. */
void ingest_store_mask(ingest_buffer *b, const uint8_t *labels);
/* Paint order for instance masks where a smaller instance wins over a larger
 * one it overlaps: order[] receives 0..count-1 by area descending, ties in
 * source order, so painting in that order leaves the smaller (on a tie, the
 * later) instance on top. */
void ingest_order_by_area(const int64_t *areas, int count, int *order);

typedef struct ingest_set {
  const char *kind;   /* "annotated" or "tag-only": progress and summary */
  const char *suffix; /* output FILE.h5 -> FILE<suffix>.h5 ("" for the main file) */
  int has_masks, has_garments, has_instances;
  int64_t count;                  /* items, sorted by id */
  char (*ids)[DATASET_ID_LENGTH]; /* [count] */
} ingest_set;

typedef struct ingest_source_type ingest_source_type;

typedef struct ingest_source {
  const ingest_source_type *type;
  const char *root;
  labelmap map;
  int set_count;
  ingest_set sets[INGEST_MAX_SETS];
  void *state; /* the source's own index */
} ingest_source;

struct ingest_source_type {
  const char *name;           /* as on the command line */
  const char *default_labels; /* label map used without --labels */
  const char *layout;         /* the input layout, for the usage text */
  /* Lists the items under s->root into s->sets, loads s->map from `labels`
   * and builds whatever index process needs. FP_FATAL on a broken layout
   * (missing directory, unreadable class list, malformed CSV). */
  void (*open)(ingest_source *s, const char *labels);
  /* Turns item `index` of set `set` into b (b is reset). */
  void (*process)(const ingest_source *s, int set, int64_t index, ingest_buffer *b);
  /* Frees s->state; NULL when the source keeps none. */
  void (*close)(ingest_source *s);
};

extern const ingest_source_type ingest_ccp, ingest_imaterialist, ingest_deepfashion2;

/* Ids (file names without `suffix`) of the files in `dir`, sorted; an absent
 * directory gives none when `optional`, else FP_FATAL. */
void ingest_list_ids(const char *dir, const char *suffix, int optional, ingest_set *set);

#endif
