#include "catalog_chunk.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "normalise.h"
#include "pass_graph.h"
#include "progress.h"

/* ITEM_DECODE: assessed (readable, not reused), its photo still to decode */
typedef enum item_status { ITEM_DECODE, ITEM_COMPUTE, ITEM_COPY_ROW, ITEM_FAILED } item_status;
typedef enum comparison { IMAGE_NEW, IMAGE_CHANGED, IMAGE_UNCHANGED } comparison;

typedef struct item {
  item_status status;
  comparison compared;
  uint64_t hash; /* 0 when the file could not be read */
  int rule;      /* prior rule, -1 for none */
  const char *product_type;
  previous_entry previous;
  catalog_geometry geometry;
  int64_t row, failure; /* position among the chunk's rows / failures */
  char reason[CATALOG_REASON_LENGTH];
} item;

/* One batch in flight: its input staged for the backend (stage_input with the slot's index as
 * the staging slot), the model queued on it, its results being copied back into host memory
 * (download_async with the slot's index as the fence). Two slots let the host work on one
 * batch's statistics while the backend computes the next, and the next batch's input cross to
 * a device while the current one computes. */
typedef struct batch_slot {
  int64_t *items;            /* chunk positions of its images */
  int count;                 /* 0: the slot is free */
  float *host_input;         /* [batch][3][H][W], host_alloc */
  uint8_t *host_photos;      /* [batch][H][W][3], host_alloc: the letterboxed RGB */
  float *host_boxes;         /* [batch][4], host_alloc: each photo's box (class_statistics) */
  uint8_t *host_predictions; /* [batch][H][W], host_alloc */
  double *host_sums;         /* [batch][K][CLASS_SUMS], host_alloc */
} batch_slot;
_Static_assert((int)BACKEND_STAGES == (int)BACKEND_FENCES,
               "a batch slot is a staging slot and a fence");

struct chunk_engine {
  chunk_setup setup;
  unet *model;
  const backend *be;
  size_t plane, image_bytes;
  item *items;
  uint8_t *pixels;       /* [chunk_size][H][W][3] */
  float *logits;         /* [batch][K][H][W] host copy for the prior; NULL without one */
  float *presence;       /* [batch][K] injected class presence (inject_prior) */
  float *confidence;     /* backend [batch][H][W]: softmax probability of the argmax */
  uint8_t *photos;       /* backend [batch][H][W][3] */
  float *boxes;          /* backend [batch][4] */
  float *linear;         /* backend [256]: catalog_linear_table */
  double *sums;          /* backend [batch][K][CLASS_SUMS] */
  uint8_t *predictions;  /* backend [batch][H][W]: the argmax */
  uint8_t *source_masks; /* [batch][source_height][source_width], with source_masks */
  size_t source_plane;
  batch_slot slots[BACKEND_FENCES];
  pass_graph graph; /* the model pass of batches without a prior rule */
  catalog_rows rows;
  catalog_failure *failures;
};

void catalog_part_path(const char *parts_directory, int64_t chunk, char *path, size_t size) {
  int n = snprintf(path, size, "%s/chunk-%010lld.h5", parts_directory, (long long)chunk);
  FP_CHECK(n > 0 && (size_t)n < size, "%s: path too long", parts_directory);
}

chunk_engine *chunk_engine_create(const chunk_setup *setup, unet *model) {
  const catalog_layout *l = &setup->layout;
  FP_CHECK(model->height == l->height && model->width == l->width && model->classes == l->classes,
           "chunk engine: model %dx%d with %d classes, layout %dx%d with %d", model->height,
           model->width, model->classes, l->height, l->width, l->classes);
  chunk_engine *e = fp_calloc(1, sizeof *e);
  e->setup = *setup;
  e->model = model;
  e->be = model->be;
  e->plane = (size_t)l->height * l->width;
  e->image_bytes = e->plane * 3;
  size_t n = (size_t)setup->chunk_size, batch = (size_t)model->batch, k = (size_t)l->classes;
  e->items = fp_calloc(n, sizeof *e->items);
  e->pixels = fp_malloc(n * e->image_bytes);
  if (setup->prior) e->logits = fp_malloc(batch * k * e->plane * sizeof *e->logits);
  if (setup->inject_prior) e->presence = fp_malloc(batch * k * sizeof *e->presence);
  e->confidence = e->be->alloc(FP_F32, batch * e->plane);
  e->photos = e->be->alloc(FP_U8, batch * e->image_bytes);
  e->boxes = e->be->alloc(FP_F32, batch * 4);
  e->sums = e->be->alloc(FP_F64, batch * k * CLASS_SUMS);
  e->linear = e->be->alloc(FP_F32, 256);
  float linear[256];
  catalog_linear_table(linear);
  e->be->upload(e->linear, linear, FP_F32, 256);
  e->predictions = e->be->alloc(FP_U8, batch * e->plane);
  for (int s = 0; s < BACKEND_FENCES; s++) {
    batch_slot *slot = &e->slots[s];
    slot->items = fp_calloc(batch, sizeof *slot->items);
    slot->host_input = e->be->host_alloc(batch * 3 * e->plane * sizeof *slot->host_input);
    slot->host_photos = e->be->host_alloc(batch * e->image_bytes);
    slot->host_boxes = e->be->host_alloc(batch * 4 * sizeof *slot->host_boxes);
    slot->host_sums = e->be->host_alloc(batch * k * CLASS_SUMS * sizeof *slot->host_sums);
    slot->host_predictions = e->be->host_alloc(batch * e->plane);
  }
  if (l->source_masks) {
    e->source_plane = (size_t)l->source_height * l->source_width;
    e->source_masks = fp_malloc(batch * e->source_plane);
  }
  catalog_rows_init(&e->rows, l, setup->chunk_size);
  e->failures = fp_calloc(n, sizeof *e->failures);
  pass_graph_init(&e->graph, "parse_catalog batch", model, setup->graphs);
  return e;
}

void chunk_engine_free(chunk_engine *e) {
  if (!e) return;
  pass_graph_release(&e->graph, e->model);
  e->be->release(e->confidence);
  e->be->release(e->photos);
  e->be->release(e->boxes);
  e->be->release(e->sums);
  e->be->release(e->linear);
  e->be->release(e->predictions);
  catalog_rows_free(&e->rows);
  free(e->items);
  free(e->pixels);
  free(e->logits);
  free(e->presence);
  for (int s = 0; s < BACKEND_FENCES; s++) {
    free(e->slots[s].items);
    e->be->host_release(e->slots[s].host_input);
    e->be->host_release(e->slots[s].host_photos);
    e->be->host_release(e->slots[s].host_boxes);
    e->be->host_release(e->slots[s].host_sums);
    e->be->host_release(e->slots[s].host_predictions);
  }
  free(e->source_masks);
  free(e->failures);
  free(e);
}

/* Hash and compare with the previous run: FAILED (unreadable), COPY_ROW, or DECODE. */
static void assess_item(chunk_engine *e, int64_t index, item *it) {
  const chunk_setup *s = &e->setup;
  const char *id = catalog_id(s->images, index);
  it->rule = -1;
  it->product_type = "";
  if (s->prior) it->rule = category_prior_rule(s->prior, id, &it->product_type);
  it->previous = s->previous ? catalog_previous_find(s->previous, id)
                             : (previous_entry){PREVIOUS_ABSENT, -1, 0, ""};
  int readable =
      catalog_hash_image(s->images, index, &it->hash, it->reason, sizeof it->reason) == 0;
  if (!readable) it->hash = 0;
  int same_result_inputs = readable && it->previous.content_hash == it->hash &&
                           (it->previous.kind == PREVIOUS_FAILURE ||
                            !strcmp(it->previous.product_type, it->product_type));
  it->compared = it->previous.kind == PREVIOUS_ABSENT ? IMAGE_NEW
                 : same_result_inputs                 ? IMAGE_UNCHANGED
                                                      : IMAGE_CHANGED;
  if (!readable) {
    it->status = ITEM_FAILED;
    return;
  }
  /* An unchanged image that failed last time is tried again: it is cheap, and its reason then
   * names tonight's file. */
  if (it->compared == IMAGE_UNCHANGED && s->reuse_previous && it->previous.kind == PREVIOUS_ROW) {
    it->status = ITEM_COPY_ROW;
    return;
  }
  it->status = ITEM_DECODE;
}

/* Decodes and letterboxes an assessed item: COMPUTE, or FAILED with the reason. */
static void decode_item(chunk_engine *e, int64_t index, item *it, uint8_t *pixels) {
  const chunk_setup *s = &e->setup;
  const catalog_layout *l = &s->layout;
  if (catalog_load_image(s->images, index, l->height, l->width, pixels, &it->geometry, it->reason,
                         sizeof it->reason)) {
    it->status = ITEM_FAILED;
    return;
  }
  if (l->source_masks && (it->geometry.source_height > l->source_height ||
                          it->geometry.source_width > l->source_width)) {
    snprintf(it->reason, sizeof it->reason,
             "photo is %dx%d, larger than output.source_max_height x source_max_width = %dx%d",
             it->geometry.source_height, it->geometry.source_width, l->source_height,
             l->source_width);
    it->status = ITEM_FAILED;
    return;
  }
  it->status = ITEM_COMPUTE;
}

static void fill_row_metadata(chunk_engine *e, int64_t index, const item *it) {
  catalog_rows *r = &e->rows;
  int64_t row = it->row;
  snprintf(r->ids[row], CATALOG_ID_LENGTH, "%s", catalog_id(e->setup.images, index));
  r->content_hash[row] = it->hash;
  r->catalog_index[row] = index;
  snprintf(r->product_type[row], PRIOR_TYPE_LENGTH, "%s", it->product_type);
  r->reused[row] = it->status == ITEM_COPY_ROW;
  if (it->status != ITEM_COMPUTE) return;
  r->source_size[row * 2] = it->geometry.source_height;
  r->source_size[row * 2 + 1] = it->geometry.source_width;
  const letterbox *b = &it->geometry.box;
  float box[5] = {b->scale, (float)b->offset_y, (float)b->offset_x, (float)b->resized_h,
                  (float)b->resized_w};
  memcpy(&r->letterbox[row * 5], box, sizeof box);
}

/* Ground-truth injection from the prior: the batch again, with the classes each image's rule
 * allows injected as its class presence (images without a rule keep the branch's output). */
static void inject_allowed_classes(chunk_engine *e, const batch_slot *slot) {
  unet *m = e->model;
  int classes = m->classes;
  e->be->tensor_to_nchw(&m->br.cls.probabilities, e->presence);
  for (int b = 0; b < slot->count; b++) {
    int rule = e->items[slot->items[b]].rule;
    for (int k = 0; rule >= 0 && k < classes; k++)
      e->presence[(size_t)b * classes + k] = (float)category_prior_allows(e->setup.prior, rule, k);
  }
  unet_inject_ground_truth(m, e->presence);
  unet_forward(m, 0);
  unet_inject_ground_truth(m, NULL);
}

/* The model over the input batch, its argmax and confidence: no host work, so a device graph
 * can record it. */
static void model_pass(unet *m, void *ctx) {
  chunk_engine *e = ctx;
  unet_forward(m, 0);
  e->be->argmax_channels(&m->logits, e->predictions, e->confidence);
}

/* The same with the category prior: each rule's logits changed on the host. */
static void model_with_prior(chunk_engine *e, const batch_slot *slot) {
  const backend *be = e->be;
  unet *m = e->model;
  unet_forward(m, 0);
  if (e->setup.inject_prior) inject_allowed_classes(e, slot);
  be->tensor_to_nchw(&m->logits, e->logits);
  for (int b = 0; b < slot->count; b++) {
    int rule = e->items[slot->items[b]].rule;
    if (rule >= 0)
      category_prior_apply(e->setup.prior, rule, e->logits + (size_t)b * m->classes * e->plane,
                           e->plane);
  }
  be->tensor_from_nchw(&m->logits, e->logits);
  be->argmax_channels(&m->logits, e->predictions, e->confidence);
}

/* Queues the model over the slot's images, their class sums (class_statistics, on the backend
 * with the argmax) and the copy of the masks and sums into the slot. */
static void start_batch(chunk_engine *e, batch_slot *slot, int fence, stage_seconds *seconds) {
  const backend *be = e->be;
  unet *m = e->model;
  const int batch = m->batch, count = slot->count;
  double start = progress_now();
  be->stage_wait(fence); /* the slot's last input has reached the device: refill it */
#pragma omp parallel for schedule(static)
  for (int b = 0; b < batch; b++) {
    float *chw = slot->host_input + (size_t)b * 3 * e->plane;
    float *box = slot->host_boxes + (size_t)b * 4;
    if (b >= count) { /* an empty place: no pixel inside its box */
      memset(chw, 0, 3 * e->plane * sizeof *chw);
      memset(box, 0, 4 * sizeof *box);
      continue;
    }
    const uint8_t *photo = e->pixels + (size_t)slot->items[b] * e->image_bytes;
    image_normalise_hwc(photo, e->plane, chw);
    memcpy(slot->host_photos + (size_t)b * e->image_bytes, photo, e->image_bytes);
    const letterbox *l = &e->items[slot->items[b]].geometry.box;
    float corners[4] = {(float)l->offset_y, (float)l->offset_x, (float)(l->offset_y + l->resized_h),
                        (float)(l->offset_x + l->resized_w)};
    memcpy(box, corners, sizeof corners);
  }
  double normalised = progress_now();
  seconds->decode += normalised - start;
  be->stage_input(fence, slot->host_input, (size_t)batch * 3 * e->plane);
  be->tensor_from_staged(&m->input, fence);
  int any_rule = 0;
  for (int b = 0; b < count; b++) any_rule |= e->items[slot->items[b]].rule >= 0;
  if (any_rule)
    model_with_prior(e, slot);
  else
    unet_run_pass(m, &e->graph, 0, model_pass, e);
  const catalog_layout *l = &e->setup.layout;
  be->upload(e->photos, slot->host_photos, FP_U8, (size_t)batch * e->image_bytes);
  be->upload(e->boxes, slot->host_boxes, FP_F32, (size_t)batch * 4);
  be->class_statistics(e->predictions, e->confidence, e->photos, e->boxes, e->linear, batch,
                       l->height, l->width, l->classes, CATALOG_MASK_OUTSIDE, e->sums);
  be->download_async(slot->host_predictions, e->predictions, FP_U8, (size_t)batch * e->plane,
                     fence);
  be->download_async(slot->host_sums, e->sums, FP_F64, (size_t)batch * l->classes * CLASS_SUMS,
                     fence);
  seconds->model += progress_now() - normalised;
}

/* Waits for the slot's results, then the statistics (from the sums) and masks of its images;
 * frees the slot. */
static void finish_batch(chunk_engine *e, batch_slot *slot, int fence, stage_seconds *seconds) {
  double start = progress_now();
  e->be->download_wait(fence);
  double modelled = progress_now();
  seconds->model += modelled - start;
  const catalog_layout *l = &e->setup.layout;
  const int count = slot->count;
#pragma omp parallel for schedule(dynamic, 1)
  for (int b = 0; b < count; b++) {
    const item *it = &e->items[slot->items[b]];
    uint8_t *mask = slot->host_predictions + (size_t)b * e->plane;
    image_stats stats = catalog_rows_stats(&e->rows, it->row);
    catalog_stats_from_sums(slot->host_sums + (size_t)b * l->classes * CLASS_SUMS, l->classes,
                            &it->geometry.box, &stats);
    if (l->source_masks)
      catalog_mask_to_source(mask, l->height, l->width, &it->geometry.box,
                             it->geometry.source_height, it->geometry.source_width,
                             e->source_masks + (size_t)b * e->source_plane, l->source_height,
                             l->source_width);
  }
  double counted = progress_now();
  seconds->stats += counted - modelled;
#pragma omp parallel for schedule(dynamic, 1)
  for (int b = 0; b < count; b++) {
    int64_t row = e->items[slot->items[b]].row;
    catalog_rows_set_mask(&e->rows, row, slot->host_predictions + (size_t)b * e->plane);
    if (l->source_masks)
      catalog_rows_set_source_mask(&e->rows, row, e->source_masks + (size_t)b * e->source_plane);
  }
  seconds->zstd += progress_now() - counted;
  slot->count = 0;
}

/* Decodes the items of [from, to) that wait for it, in parallel. */
static void decode_items(chunk_engine *e, int64_t first, int64_t from, int64_t to,
                         stage_seconds *seconds) {
  double start = progress_now();
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t j = from; j < to; j++)
    if (e->items[j].status == ITEM_DECODE)
      decode_item(e, first + j, &e->items[j], e->pixels + (size_t)j * e->image_bytes);
  seconds->decode += progress_now() - start;
}

/* Item j's row (computed or copied from the previous run) or failure record, in item order. */
static void place_item(chunk_engine *e, int64_t first, int64_t j, chunk_counts *counts,
                       stage_seconds *seconds) {
  item *it = &e->items[j];
  FP_CHECK(it->status != ITEM_DECODE, "chunk engine: item %lld placed before its decode",
           (long long)(first + j));
  it->row = it->failure = -1;
  if (it->status == ITEM_COMPUTE || it->status == ITEM_COPY_ROW)
    it->row = counts->ok++;
  else
    it->failure = counts->failed++;
  counts->new_images += it->compared == IMAGE_NEW;
  counts->changed += it->compared == IMAGE_CHANGED;
  counts->unchanged += it->compared == IMAGE_UNCHANGED;
  counts->computed += it->status == ITEM_COMPUTE;
  counts->reused += it->status == ITEM_COPY_ROW;
  e->rows.count = counts->ok;
  double start = progress_now();
  if (it->status == ITEM_COPY_ROW)
    catalog_previous_read_row(e->setup.previous, it->previous.index, &e->rows, it->row);
  if (it->row >= 0) fill_row_metadata(e, first + j, it);
  if (it->failure >= 0) {
    catalog_failure *f = &e->failures[it->failure];
    memset(f, 0, sizeof *f);
    snprintf(f->id, sizeof f->id, "%s", catalog_id(e->setup.images, first + j));
    f->content_hash = it->hash;
    f->catalog_index = first + j;
    snprintf(f->reason, sizeof f->reason, "%s", it->reason);
  }
  seconds->reuse += progress_now() - start;
}

/* The chunk's items in order: each placed, those to compute batched, double-buffered (batch i+1
 * is queued before batch i's statistics are taken, so a device computes while the host counts),
 * and the photos decoded a batch's worth ahead, when the pass reaches them: while the device
 * computes the batch queued last. */
static void run_items(chunk_engine *e, int64_t first, int64_t n, chunk_counts *counts,
                      stage_seconds *seconds) {
  const int batch = e->model->batch;
  int filling = 0;     /* the slot being filled; the other may be in flight */
  int64_t decoded = 0; /* items [0, decoded) are decoded, or need no decoding */
  for (int64_t j = 0; j <= n; j++) {
    batch_slot *slot = &e->slots[filling];
    if (j < n) {
      if (j == decoded) {
        decoded = j + batch < n ? j + batch : n;
        decode_items(e, first, j, decoded, seconds);
      }
      place_item(e, first, j, counts, seconds);
      if (e->items[j].status == ITEM_COMPUTE) slot->items[slot->count++] = j;
    }
    if (slot->count == 0 || (slot->count < batch && j < n)) continue;
    start_batch(e, slot, filling, seconds);
    int other = 1 - filling;
    if (e->slots[other].count) finish_batch(e, &e->slots[other], other, seconds);
    filling = other;
  }
  int last = 1 - filling;
  if (e->slots[last].count) finish_batch(e, &e->slots[last], last, seconds);
}

chunk_counts chunk_engine_run(chunk_engine *e, int64_t chunk, stage_seconds *seconds) {
  const chunk_setup *s = &e->setup;
  const int64_t first = chunk * s->chunk_size;
  const int64_t total = catalog_count(s->images);
  FP_CHECK(first >= 0 && first < total, "chunk %lld starts outside the %lld images",
           (long long)chunk, (long long)total);
  const int64_t n = first + s->chunk_size <= total ? s->chunk_size : total - first;
  double start = progress_now();
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t j = 0; j < n; j++) assess_item(e, first + j, &e->items[j]);
  seconds->decode += progress_now() - start;

  chunk_counts counts = {0};
  run_items(e, first, n, &counts, seconds);
  for (int64_t j = 0; j < n; j++)
    if (e->items[j].status == ITEM_COMPUTE)
      counts.mask_bytes += e->rows.mask_bytes[e->items[j].row];

  start = progress_now();
  char path[4200];
  catalog_part_path(s->parts_directory, chunk, path, sizeof path);
  catalog_shard_writer *w = catalog_shard_create(path, &s->layout, counts.ok, counts.failed);
  catalog_shard_write_rows(w, 0, &e->rows);
  catalog_shard_write_failures(w, 0, e->failures, counts.failed);
  catalog_shard_commit(w);
  seconds->write += progress_now() - start;
  return counts;
}
