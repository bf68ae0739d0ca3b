#include "loader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "augment.h"
#include "check.h"
#include "dataset.h"
#include "normalise.h"
#include "shard.h"

#define LOADER_SLOTS 2 /* the batch the caller holds and the one being filled */

struct loader {
  loader_config cfg;
  augment_settings augment; /* cfg.augment points here when set */
  fp_dataset *ds, *tags_ds;
  int height, width, classes;
  int64_t count, batches;
  int64_t masked; /* rows[0, masked) are rows of ds, rows[masked, count) of tags_ds */
  int64_t *rows;  /* dataset rows of the split, after `limit` (and tags_limit) */
  int64_t *order; /* this epoch's permutation of 0..count-1 */
  int epoch;
  uint8_t *photo, *mask; /* the worker's scratch for one image */
  loader_batch slots[LOADER_SLOTS];
  pthread_t worker;
  int worker_running;
  pthread_mutex_t lock;
  pthread_cond_t changed;
  int64_t produced, handed, released; /* batches of this epoch */
  int stop;
};

static void to_chw(const uint8_t *photo, int height, int width, float *chw) {
  size_t plane = (size_t)height * width;
  for (size_t o = 0; o < plane; o++)
    for (int c = 0; c < 3; c++) chw[c * plane + o] = photo[o * 3 + c] / 255.0f;
}

/* A tag-only image: its photo, a mask of DATASET_IGNORE_LABEL, its tags in slot j. */
static void read_tag_only(loader *l, int64_t row, int j, loader_batch *out, uint8_t *mask) {
  dataset_read_image(l->tags_ds, row, l->photo);
  memset(mask, DATASET_IGNORE_LABEL, (size_t)l->height * l->width);
  dataset_read_tags(l->tags_ds, row, out->tags + (size_t)j * l->classes);
  out->tag_only[j] = 1;
}

static void fill_batch(loader *l, int64_t batch, loader_batch *out) {
  size_t plane = (size_t)l->height * l->width;
  out->count = 0;
  if (l->tags_ds) {
    memset(out->tag_only, 0, (size_t)l->cfg.batch_size);
    memset(out->tags, 0, (size_t)l->cfg.batch_size * l->classes);
  }
  for (int j = 0; j < l->cfg.batch_size; j++) {
    int64_t position = shard_position(batch, l->cfg.rank, j, l->cfg.batch_size, l->cfg.world_size);
    float *image = out->images + (size_t)j * 3 * plane;
    uint8_t *mask = out->masks + (size_t)j * plane;
    if (position >= l->count) { /* past the end of a kept partial batch */
      memset(image, 0, 3 * plane * sizeof *image);
      memset(mask, l->cfg.pad_label, plane);
      out->indices[j] = -1;
      continue;
    }
    out->count++;
    int64_t item = l->order[position], row = l->rows[item];
    out->indices[j] = row;
    if (item >= l->masked) {
      read_tag_only(l, row, j, out, l->cfg.augment ? l->mask : mask);
    } else {
      dataset_read_image(l->ds, row, l->photo);
      dataset_read_mask(l->ds, row, l->cfg.augment ? l->mask : mask);
    }
    if (l->cfg.augment) {
      /* tag-only rows draw after the annotated file's rows */
      int64_t key = item >= l->masked ? dataset_count(l->ds) + row : row;
      augment_params p =
          augment_draw(l->cfg.augment, l->cfg.seed, l->epoch, key, l->height, l->width);
      augment_apply(&p, l->photo, l->mask, l->height, l->width, image, mask);
    } else {
      to_chw(l->photo, l->height, l->width, image);
    }
    image_normalise_chw(image, plane);
  }
}

static void *prefetch(void *arg) {
  loader *l = arg;
  for (int64_t b = l->produced; b < l->batches; b++) {
    pthread_mutex_lock(&l->lock);
    while (!l->stop && b >= l->released + LOADER_SLOTS) pthread_cond_wait(&l->changed, &l->lock);
    int stop = l->stop;
    pthread_mutex_unlock(&l->lock);
    if (stop) break;
    fill_batch(l, b, &l->slots[b % LOADER_SLOTS]);
    pthread_mutex_lock(&l->lock);
    l->produced = b + 1;
    pthread_cond_broadcast(&l->changed);
    pthread_mutex_unlock(&l->lock);
  }
  return NULL;
}

static void stop_worker(loader *l) {
  if (!l->worker_running) return;
  pthread_mutex_lock(&l->lock);
  l->stop = 1;
  pthread_cond_broadcast(&l->changed);
  pthread_mutex_unlock(&l->lock);
  FP_CHECK(pthread_join(l->worker, NULL) == 0, "pthread_join failed");
  l->worker_running = 0;
}

/* Appends the rows of ds in the split, at most limit (0 = all), to l->rows. */
static void select_rows(loader *l, fp_dataset *ds, int64_t limit) {
  int64_t total = dataset_count(ds), first = l->count;
  l->rows = realloc(l->rows, (size_t)(l->count + total + 1) * sizeof *l->rows);
  FP_CHECK(l->rows, "out of memory");
  for (int64_t i = 0; i < total; i++)
    if (l->cfg.split < 0 || dataset_split_of(ds, i) == l->cfg.split) l->rows[l->count++] = i;
  if (limit > 0 && limit < l->count - first) l->count = first + limit;
}

static void open_tag_only(loader *l) {
  const char *path = l->cfg.tags_path;
  l->tags_ds = dataset_open(path);
  FP_CHECK(!dataset_has_masks(l->tags_ds),
           "%s: has /masks: a tag-only file (ingest's FILE_tags.h5) was expected", path);
  FP_CHECK(dataset_height(l->tags_ds) == l->height && dataset_width(l->tags_ds) == l->width,
           "%s: images of %dx%d, but %s has %dx%d", path, dataset_height(l->tags_ds),
           dataset_width(l->tags_ds), l->cfg.path, l->height, l->width);
  FP_CHECK(dataset_num_classes(l->tags_ds) == l->classes, "%s: %d classes, but %s has %d", path,
           dataset_num_classes(l->tags_ds), l->cfg.path, l->classes);
  for (int k = 0; k < l->classes; k++)
    FP_CHECK(!strcmp(dataset_class_name(l->tags_ds, k), dataset_class_name(l->ds, k)),
             "%s: class %d is '%s', but in %s it is '%s'", path, k,
             dataset_class_name(l->tags_ds, k), l->cfg.path, dataset_class_name(l->ds, k));
  l->cfg.tags_path = dataset_path(l->tags_ds);
  select_rows(l, l->tags_ds, l->cfg.tags_limit);
}

loader *loader_open(const loader_config *cfg) {
  FP_CHECK(cfg->split >= -1 && cfg->split <= 2,
           "%s: loader split %d (-1 all, 0 train, 1 val, "
           "2 test)",
           cfg->path, cfg->split);
  FP_CHECK(cfg->batch_size > 0 && cfg->world_size > 0 && cfg->rank >= 0 &&
               cfg->rank < cfg->world_size && cfg->limit >= 0,
           "%s: loader batch %d, rank %d of %d, limit %lld", cfg->path, cfg->batch_size, cfg->rank,
           cfg->world_size, (long long)cfg->limit);
  FP_CHECK(!cfg->image_alloc == !cfg->image_release,
           "%s: loader image_alloc and image_release come together", cfg->path);
  char why[200] = "";
  FP_CHECK(!cfg->augment || augment_settings_check(cfg->augment, why, sizeof why), "%s: %s",
           cfg->path, why);
  loader *l = fp_calloc(1, sizeof *l);
  l->cfg = *cfg;
  if (cfg->augment) {
    l->augment = *cfg->augment;
    l->cfg.augment = &l->augment;
  }
  l->ds = dataset_open(cfg->path);
  FP_CHECK(dataset_has_masks(l->ds), "%s: the loader needs /masks (this is a tag-only file)",
           cfg->path);
  l->cfg.path = dataset_path(l->ds);
  l->height = dataset_height(l->ds);
  l->width = dataset_width(l->ds);
  l->classes = dataset_num_classes(l->ds);
  select_rows(l, l->ds, cfg->limit);
  l->masked = l->count;
  if (cfg->tags_path) open_tag_only(l);
  int64_t global_batch = (int64_t)cfg->batch_size * cfg->world_size;
  l->batches = cfg->keep_partial
                   ? (l->count + global_batch - 1) / global_batch
                   : shard_batches_per_epoch(l->count, cfg->batch_size, cfg->world_size);
  l->order = fp_malloc((size_t)(l->count ? l->count : 1) * sizeof *l->order);
  size_t plane = (size_t)l->height * l->width;
  l->photo = fp_malloc(plane * 3);
  l->mask = fp_malloc(plane);
  for (int s = 0; s < LOADER_SLOTS; s++) {
    size_t image_bytes = (size_t)cfg->batch_size * 3 * plane * sizeof(float);
    l->slots[s].images = cfg->image_alloc ? cfg->image_alloc(image_bytes) : fp_malloc(image_bytes);
    l->slots[s].masks = fp_malloc((size_t)cfg->batch_size * plane);
    l->slots[s].indices = fp_malloc((size_t)cfg->batch_size * sizeof(int64_t));
    if (l->tags_ds) {
      l->slots[s].tag_only = fp_malloc((size_t)cfg->batch_size);
      l->slots[s].tags = fp_malloc((size_t)cfg->batch_size * l->classes);
    }
  }
  FP_CHECK(pthread_mutex_init(&l->lock, NULL) == 0, "pthread_mutex_init failed");
  FP_CHECK(pthread_cond_init(&l->changed, NULL) == 0, "pthread_cond_init failed");
  return l;
}

int64_t loader_images(const loader *l) {
  return l->count;
}
int64_t loader_tag_only_images(const loader *l) {
  return l->count - l->masked;
}
int64_t loader_batches_per_epoch(const loader *l) {
  return l->batches;
}

void loader_start_epoch(loader *l, int epoch) {
  loader_start_epoch_at(l, epoch, 0);
}

void loader_start_epoch_at(loader *l, int epoch, int64_t first_batch) {
  FP_CHECK(first_batch >= 0 && first_batch <= l->batches,
           "%s: epoch %d resumes at batch %lld of %lld", l->cfg.path, epoch, (long long)first_batch,
           (long long)l->batches);
  stop_worker(l);
  l->epoch = epoch;
  shard_permutation(l->order, l->count, l->cfg.seed, epoch, l->cfg.shuffle);
  l->produced = l->handed = l->released = first_batch;
  l->stop = 0;
  FP_CHECK(pthread_create(&l->worker, NULL, prefetch, l) == 0, "%s: pthread_create failed",
           l->cfg.path);
  l->worker_running = 1;
}

int loader_next(loader *l, loader_batch *out) {
  FP_CHECK(l->worker_running, "%s: loader_next before loader_start_epoch", l->cfg.path);
  pthread_mutex_lock(&l->lock);
  l->released = l->handed;
  pthread_cond_broadcast(&l->changed);
  int has_batch = l->handed < l->batches;
  while (has_batch && l->produced <= l->handed) pthread_cond_wait(&l->changed, &l->lock);
  if (has_batch) *out = l->slots[l->handed++ % LOADER_SLOTS];
  pthread_mutex_unlock(&l->lock);
  return has_batch;
}

void loader_close(loader *l) {
  if (!l) return;
  stop_worker(l);
  pthread_cond_destroy(&l->changed);
  pthread_mutex_destroy(&l->lock);
  for (int s = 0; s < LOADER_SLOTS; s++) {
    if (l->cfg.image_release)
      l->cfg.image_release(l->slots[s].images);
    else
      free(l->slots[s].images);
    free(l->slots[s].masks);
    free(l->slots[s].indices);
    free(l->slots[s].tag_only);
    free(l->slots[s].tags);
  }
  free(l->photo);
  free(l->mask);
  free(l->order);
  free(l->rows);
  dataset_close(l->ds);
  if (l->tags_ds) dataset_close(l->tags_ds);
  free(l);
}
