/* The parts of a source's work that every source shares. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ingest_source.h"
#include "jpeg_io.h"

/* Garments, instances and attribute ids follow the fixed part at this alignment. */
#define GARMENT_ALIGNMENT 8

void ingest_buffer_init(ingest_buffer *b, int height, int width, int num_classes) {
  size_t pixels = (size_t)height * (size_t)width;
  size_t fixed = sizeof(ingest_header) + pixels * 4 + (size_t)num_classes;
  b->fixed_size = (fixed + GARMENT_ALIGNMENT - 1) / GARMENT_ALIGNMENT * GARMENT_ALIGNMENT;
  b->capacity = b->fixed_size + 16 * sizeof(dataset_garment);
  b->bytes = fp_calloc(1, b->capacity);
  b->size = b->fixed_size;
  b->height = height;
  b->width = width;
  b->num_classes = num_classes;
  ingest_buffer_attach(b);
}

void ingest_buffer_free(ingest_buffer *b) {
  free(b->bytes);
  b->bytes = NULL;
}

void ingest_buffer_attach(ingest_buffer *b) {
  size_t pixels = (size_t)b->height * (size_t)b->width;
  b->header = (ingest_header *)b->bytes;
  b->image = b->bytes + sizeof(ingest_header);
  b->mask = b->image + pixels * 3;
  b->tags = b->mask + pixels;
  const ingest_header *h = b->header;
  FP_CHECK(h->garment_count >= 0 && h->instance_count >= 0 && h->attribute_id_count >= 0 &&
               b->size == b->fixed_size + (size_t)h->garment_count * sizeof(dataset_garment) +
                              (size_t)h->instance_count * sizeof(dataset_instance) +
                              (size_t)h->attribute_id_count * sizeof(int32_t),
           "ingest: an item of %zu bytes does not hold %d garments, %d instances and %d "
           "attribute ids",
           b->size, h->garment_count, h->instance_count, h->attribute_id_count);
  b->garments = (dataset_garment *)(b->bytes + b->fixed_size);
  b->instances = (dataset_instance *)(b->garments + h->garment_count);
  b->attribute_ids = (int32_t *)(b->instances + h->instance_count);
  int64_t attribute_ids = 0;
  for (int i = 0; i < h->instance_count; i++) {
    FP_CHECK(b->instances[i].attribute_count >= 0, "ingest: instance %d has %d attribute ids", i,
             b->instances[i].attribute_count);
    attribute_ids += b->instances[i].attribute_count;
  }
  FP_CHECK(attribute_ids == h->attribute_id_count,
           "ingest: the instances have %lld attribute ids, the item %d", (long long)attribute_ids,
           h->attribute_id_count);
}

void ingest_buffer_reset(ingest_buffer *b) {
  memset(b->header, 0, sizeof *b->header);
  memset(b->tags, 0, (size_t)b->num_classes);
  b->size = b->fixed_size;
}

static void reserve(ingest_buffer *b, size_t size) {
  if (size <= b->capacity) return;
  while (b->capacity < size) b->capacity *= 2;
  b->bytes = realloc(b->bytes, b->capacity);
  FP_CHECK(b->bytes, "out of memory for an item of %zu bytes", size);
}

void ingest_buffer_receive_size(ingest_buffer *b, size_t size) {
  FP_CHECK(size >= b->fixed_size, "ingest: received an item of %zu bytes, expected at least %zu",
           size, b->fixed_size);
  reserve(b, size);
  b->size = size;
}

void ingest_add_garment(ingest_buffer *b, const dataset_garment *garment) {
  FP_CHECK(b->header->instance_count == 0, "ingest: an item with instances gets a garment");
  reserve(b, b->size + sizeof *garment);
  b->size += sizeof *garment;
  int32_t index = ((ingest_header *)b->bytes)->garment_count++;
  ingest_buffer_attach(b);
  b->garments[index] = *garment;
}

void ingest_add_instance(ingest_buffer *b, int32_t category_id, const int32_t *attribute_ids,
                         int32_t attribute_count) {
  FP_CHECK(b->header->garment_count == 0, "ingest: an item with garments gets an instance");
  size_t ids_bytes = (size_t)b->header->attribute_id_count * sizeof(int32_t);
  reserve(b, b->size + sizeof(dataset_instance) + (size_t)attribute_count * sizeof(int32_t));
  /* the item's attribute ids move up to make room for the instance */
  unsigned char *ids = b->bytes + b->size - ids_bytes;
  memmove(ids + sizeof(dataset_instance), ids, ids_bytes);
  if (attribute_count)
    memcpy(ids + sizeof(dataset_instance) + ids_bytes, attribute_ids,
           (size_t)attribute_count * sizeof(int32_t));
  memcpy(ids, &(dataset_instance){category_id, attribute_count}, sizeof(dataset_instance));
  b->size += sizeof(dataset_instance) + (size_t)attribute_count * sizeof(int32_t);
  ingest_header *h = (ingest_header *)b->bytes;
  h->instance_count++;
  h->attribute_id_count += attribute_count;
  ingest_buffer_attach(b);
}

int ingest_fail(ingest_buffer *b, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(b->header->reason, sizeof b->header->reason, fmt, args);
  va_end(args);
  b->header->status = INGEST_BAD;
  return -1;
}

int ingest_read_photo(ingest_buffer *b, const char *path) {
  uint8_t *photo;
  int photo_h, photo_w;
  if (jpeg_read_rgb(path, &photo, &photo_h, &photo_w, b->header->reason, sizeof b->header->reason))
    return -1;
  b->header->source_height = photo_h;
  b->header->source_width = photo_w;
  b->header->box = letterbox_fit(photo_h, photo_w, b->height, b->width);
  resize_photo(photo, photo_h, photo_w, &b->header->box, b->image, b->height, b->width);
  free(photo);
  return 0;
}

void ingest_store_mask(ingest_buffer *b, const uint8_t *labels) {
  int h = b->header->source_height, w = b->header->source_width;
  for (size_t p = 0; p < (size_t)h * w; p++)
    if (labels[p] != LABELMAP_IGNORE) b->tags[labels[p]] = 1;
  resize_mask(labels, h, w, &b->header->box, b->mask, b->height, b->width);
}

typedef struct sized_instance {
  int64_t area;
  int index;
} sized_instance;

static int compare_by_area(const void *a, const void *b) {
  const sized_instance *x = a, *y = b;
  if (x->area != y->area) return x->area > y->area ? -1 : 1;
  return x->index - y->index;
}

void ingest_order_by_area(const int64_t *areas, int count, int *order) {
  sized_instance *instances = fp_malloc((size_t)count * sizeof *instances);
  for (int i = 0; i < count; i++) instances[i] = (sized_instance){areas[i], i};
  qsort(instances, (size_t)count, sizeof *instances, compare_by_area);
  for (int i = 0; i < count; i++) order[i] = instances[i].index;
  free(instances);
}

static int compare_ids(const void *a, const void *b) {
  return strcmp(a, b);
}

void ingest_list_ids(const char *dir, const char *suffix, int optional, ingest_set *set) {
  set->ids = NULL;
  set->count = 0;
  DIR *d = opendir(dir);
  if (!d) {
    FP_CHECK(optional && errno == ENOENT, "%s: cannot list: %s", dir, strerror(errno));
    return;
  }
  int64_t capacity = 0;
  size_t suffix_length = strlen(suffix);
  for (struct dirent *entry; (entry = readdir(d));) {
    size_t length = strlen(entry->d_name);
    if (entry->d_name[0] == '.' || length <= suffix_length ||
        strcmp(entry->d_name + length - suffix_length, suffix))
      continue;
    FP_CHECK(length - suffix_length < DATASET_ID_LENGTH, "%s/%s: name longer than %d characters",
             dir, entry->d_name, DATASET_ID_LENGTH - 1);
    if (set->count == capacity) {
      capacity = capacity ? 2 * capacity : 1024;
      set->ids = realloc(set->ids, (size_t)capacity * sizeof *set->ids);
      FP_CHECK(set->ids, "out of memory");
    }
    memcpy(set->ids[set->count], entry->d_name, length - suffix_length);
    set->ids[set->count++][length - suffix_length] = '\0';
  }
  closedir(d);
  if (set->count) qsort(set->ids, (size_t)set->count, sizeof *set->ids, compare_ids);
}
