/* Clothing Co-Parsing: DIR/photos/NNNN.jpg, pixel-level masks in
 * DIR/annotations/pixel-level/NNNN.mat (`groundtruth`), image-level tags in
 * DIR/annotations/image-level/NNNN.mat (`tags`), class names in
 * DIR/label_list.mat. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ingest_source.h"
#include "mat_io.h"

enum { SET_ANNOTATED, SET_TAGS_ONLY };

static void ccp_open(ingest_source *s, const char *labels) {
  char path[4096], error[1024];
  snprintf(path, sizeof path, "%s/photos", s->root);
  DIR *photos = opendir(path);
  FP_CHECK(photos, "%s: cannot open: %s (is --root a CCP directory?)", path, strerror(errno));
  closedir(photos);
  snprintf(path, sizeof path, "%s/label_list.mat", s->root);
  char **source_names;
  int source_count;
  FP_CHECK(
      !mat_read_string_cell(path, "label_list", &source_names, &source_count, error, sizeof error),
      "%s", error);
  labelmap_load(&s->map, labels, source_names, source_count);
  mat_free_strings(source_names, source_count);
  s->set_count = 2;
  s->sets[SET_ANNOTATED] = (ingest_set){.kind = "annotated", .suffix = "", .has_masks = 1};
  s->sets[SET_TAGS_ONLY] = (ingest_set){.kind = "tag-only", .suffix = "_tags"};
  snprintf(path, sizeof path, "%s/annotations/pixel-level", s->root);
  ingest_list_ids(path, ".mat", 1, &s->sets[SET_ANNOTATED]);
  snprintf(path, sizeof path, "%s/annotations/image-level", s->root);
  ingest_list_ids(path, ".mat", 1, &s->sets[SET_TAGS_ONLY]);
  FP_CHECK(s->sets[SET_ANNOTATED].count + s->sets[SET_TAGS_ONLY].count > 0,
           "%s: no .mat files under annotations/pixel-level or annotations/image-level", s->root);
}

/* Maps the labels of `path` in place; -1 (bad) or 1 (excluded) set the status. */
static int map_labels(const ingest_source *s, const char *path, uint8_t *labels, size_t count,
                      ingest_buffer *b) {
  int id;
  switch (labelmap_apply(&s->map, labels, count, &id)) {
  case LABELMAP_MAPPED:
    return 0;
  case LABELMAP_HAS_UNKNOWN:
    return ingest_fail(b, "%s: class id %d is not in label map %s", path, id, s->map.path);
  case LABELMAP_HAS_EXCLUDED:
    b->header->status = INGEST_EXCLUDED;
    return 1;
  case LABELMAP_HAS_DROPPED:
    break;
  }
  return ingest_fail(b,
                     "%s: class id %d is 'drop' in label map %s, which a CCP mask cannot honour "
                     "(nothing lies beneath a pixel label; use ignore or a class)",
                     path, id, s->map.path);
}

static int read_mask(const ingest_source *s, const char *id, const char *photo_path,
                     ingest_buffer *b) {
  char path[4096];
  snprintf(path, sizeof path, "%s/annotations/pixel-level/%s.mat", s->root, id);
  uint8_t *labels;
  int rows, cols;
  if (mat_read_uint8_matrix(path, "groundtruth", &labels, &rows, &cols, b->header->reason,
                            sizeof b->header->reason))
    return -1;
  int status = 0;
  if (rows != b->header->source_height || cols != b->header->source_width)
    status = ingest_fail(b, "%s: groundtruth is %dx%d but the photo %s is %dx%d", path, rows, cols,
                         photo_path, b->header->source_height, b->header->source_width);
  if (status == 0) status = map_labels(s, path, labels, (size_t)rows * cols, b);
  if (status == 0) ingest_store_mask(b, labels);
  free(labels);
  return status;
}

static int read_tags(const ingest_source *s, const char *id, ingest_buffer *b) {
  char path[4096];
  snprintf(path, sizeof path, "%s/annotations/image-level/%s.mat", s->root, id);
  uint8_t *labels;
  int rows, cols;
  if (mat_read_uint8_matrix(path, "tags", &labels, &rows, &cols, b->header->reason,
                            sizeof b->header->reason))
    return -1;
  int status = map_labels(s, path, labels, (size_t)rows * cols, b);
  if (status == 0)
    for (int i = 0; i < rows * cols; i++)
      if (labels[i] != LABELMAP_IGNORE) b->tags[labels[i]] = 1;
  free(labels);
  return status;
}

static void ccp_process(const ingest_source *s, int set, int64_t index, ingest_buffer *b) {
  const char *id = s->sets[set].ids[index];
  char photo_path[4096];
  snprintf(photo_path, sizeof photo_path, "%s/photos/%s.jpg", s->root, id);
  if (ingest_read_photo(b, photo_path)) return;
  int status = set == SET_ANNOTATED ? read_mask(s, id, photo_path, b) : read_tags(s, id, b);
  if (status == 0) b->header->status = INGEST_OK;
}

const ingest_source_type ingest_ccp = {
    "ccp",
    "ccp59",
    "  ccp: DIR/photos/NNNN.jpg, DIR/annotations/pixel-level/NNNN.mat (groundtruth),\n"
    "    DIR/annotations/image-level/NNNN.mat (tags), DIR/label_list.mat. Annotated\n"
    "    photos go to FILE.h5, tag-only photos to FILE_tags.h5 (no /masks).\n",
    ccp_open,
    ccp_process,
    NULL};
