/* DeepFashion2: DIR/image/NAME.jpg and DIR/annos/NAME.json holding `source`
 * ("shop" or "user"), `pair_id` and item1..itemN, each with category_id
 * (1..13), category_name, bounding_box [x1, y1, x2, y2], segmentation (a list
 * of polygons [x1, y1, x2, y2, ...] in pixels), style, scale, occlusion,
 * zoom_in, viewpoint and landmarks (not kept). Source class 0 is background,
 * category c is c. Polygons: even-odd, pixel centres (io/ingest/polygon.h); the
 * polygons of one item are united; the smaller of two overlapping items wins. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ingest_source.h"
#include "json.h"
#include "polygon.h"

#define CATEGORY_COUNT 13

static const char *source_names[CATEGORY_COUNT + 1] = {"background",
                                                       "short sleeve top",
                                                       "long sleeve top",
                                                       "short sleeve outwear",
                                                       "long sleeve outwear",
                                                       "vest",
                                                       "sling",
                                                       "shorts",
                                                       "trousers",
                                                       "skirt",
                                                       "short sleeve dress",
                                                       "long sleeve dress",
                                                       "vest dress",
                                                       "sling dress"};

static void deepfashion2_open(ingest_source *s, const char *labels) {
  char path[4096];
  labelmap_load(&s->map, labels, (char *const *)source_names, CATEGORY_COUNT + 1);
  FP_CHECK(s->map.target[0] >= 0 || s->map.target[0] == LABELMAP_IGNORE,
           "label map %s: source class 0 (background) must map to a class or ignore", s->map.path);
  s->set_count = 1;
  s->sets[0] = (ingest_set){.kind = "annotated", .suffix = "", .has_masks = 1, .has_garments = 1};
  snprintf(path, sizeof path, "%s/annos", s->root);
  ingest_list_ids(path, ".json", 0, &s->sets[0]);
  FP_CHECK(s->sets[0].count > 0, "%s: no .json files (is --root a DeepFashion2 directory?)", path);
}

/* One item as read from the json, before rasterisation. */
typedef struct garment_annotation {
  dataset_garment garment;
  int16_t target;
  const json_value *segmentation;
} garment_annotation;

typedef struct json_context {
  const char *path;
  ingest_buffer *b;
} json_context;

/* "path:line:column: item<N>: what", the position of the value `at`. */
static int item_fail(const json_context *c, const json_value *at, int item, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int item_fail(const json_context *c, const json_value *at, int item, const char *fmt, ...) {
  char what[DATASET_REASON_LENGTH];
  va_list args;
  va_start(args, fmt);
  vsnprintf(what, sizeof what, fmt, args);
  va_end(args);
  return ingest_fail(c->b, "%s:%d:%d: item%d: %s", c->path, at->line, at->column, item, what);
}

static int read_int_field(const json_context *c, const json_value *object, int item,
                          const char *key, int32_t *out) {
  long long value;
  if (!json_integer(json_member(object, key), INT32_MIN, INT32_MAX, &value))
    return item_fail(c, object, item, "needs an integer '%s'", key);
  *out = (int32_t)value;
  return 0;
}

/* photo coordinates beyond a million pixels are not coordinates of a photo */
#define BOX_LIMIT 1e6

static int read_box(const json_context *c, const json_value *object, int item, float box[4]) {
  const json_value *list = json_member(object, "bounding_box");
  int ok = list && list->type == JSON_ARRAY && list->count == 4;
  for (int k = 0; ok && k < 4; k++) ok = list->items[k].type == JSON_NUMBER;
  if (!ok) return item_fail(c, object, item, "needs 'bounding_box': [x1, y1, x2, y2]");
  for (int k = 0; k < 4; k++) {
    /* pixel coordinates; beyond this a float conversion could overflow (undefined behaviour) */
    double v = list->items[k].number;
    if (!(fabs(v) <= BOX_LIMIT))
      return item_fail(c, object, item,
                       "bounding_box value %g is not a pixel coordinate (|v| <= %g)", v, BOX_LIMIT);
    box[k] = (float)v;
  }
  return 0;
}

static int check_segmentation(const json_context *c, const json_value *object, int item,
                              const json_value **segmentation) {
  const json_value *list = json_member(object, "segmentation");
  if (!list || list->type != JSON_ARRAY)
    return item_fail(c, object, item, "needs 'segmentation': a list of polygons");
  for (int p = 0; p < list->count; p++) {
    const json_value *polygon = &list->items[p];
    if (polygon->type != JSON_ARRAY)
      return item_fail(c, polygon, item, "segmentation polygon %d is %s, not a list of numbers", p,
                       json_type_name(polygon->type));
    for (int k = 0; k < polygon->count; k++)
      if (polygon->items[k].type != JSON_NUMBER)
        return item_fail(c, &polygon->items[k], item,
                         "segmentation polygon %d: coordinate %d is %s", p, k,
                         json_type_name(polygon->items[k].type));
    if (polygon->count % 2)
      return item_fail(c, polygon, item,
                       "segmentation polygon %d has %d coordinates, an odd number (x, y pairs)", p,
                       polygon->count);
  }
  *segmentation = list;
  return 0;
}

static int read_item(const json_context *c, const labelmap *map, const json_value *object, int item,
                     garment_annotation *out) {
  if (object->type != JSON_OBJECT) return item_fail(c, object, item, "is not an object");
  dataset_garment *g = &out->garment;
  g->item = item;
  if (read_int_field(c, object, item, "category_id", &g->category_id)) return -1;
  if (g->category_id < 1 || g->category_id > CATEGORY_COUNT)
    return item_fail(c, object, item, "unknown class id %d (DeepFashion2 has 1..%d)",
                     g->category_id, CATEGORY_COUNT);
  const json_value *name = json_member(object, "category_name");
  if (!name || name->type != JSON_STRING || strcmp(name->string, source_names[g->category_id]))
    return item_fail(c, object, item, "category_name '%s' does not match category_id %d ('%s')",
                     name && name->type == JSON_STRING ? name->string : "(missing)", g->category_id,
                     source_names[g->category_id]);
  struct {
    const char *key;
    int32_t *value;
  } fields[] = {{"style", &g->style},
                {"scale", &g->scale},
                {"occlusion", &g->occlusion},
                {"zoom_in", &g->zoom_in},
                {"viewpoint", &g->viewpoint}};
  for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
    if (read_int_field(c, object, item, fields[f].key, fields[f].value)) return -1;
  if (read_box(c, object, item, g->source_box)) return -1;
  if (check_segmentation(c, object, item, &out->segmentation)) return -1;
  out->target = map->target[g->category_id];
  if (out->target == LABELMAP_UNKNOWN)
    return item_fail(c, object, item, "class id %d (%s) is not in label map %s", g->category_id,
                     source_names[g->category_id], map->path);
  return 0;
}

/* "item<N>" with N >= 1 and no leading zero: N; otherwise 0. */
static int item_number(const char *key) {
  if (strncmp(key, "item", 4) || key[4] < '1' || key[4] > '9') return 0;
  long n = 0;
  for (const char *s = key + 4; *s; s++) {
    if (*s < '0' || *s > '9' || n > 100000) return 0;
    n = n * 10 + (*s - '0');
  }
  return (int)n;
}

static int compare_items(const void *a, const void *b) {
  return ((const garment_annotation *)a)->garment.item -
         ((const garment_annotation *)b)->garment.item;
}

/* source and pair_id into the header, the items into annotations (sorted by N). */
static int read_annotations(const ingest_source *s, const json_context *c, const json_value *doc,
                            garment_annotation **annotations, int *count) {
  *annotations = NULL;
  *count = 0;
  if (doc->type != JSON_OBJECT)
    return ingest_fail(c->b, "%s: the top level is not an object", c->path);
  const json_value *source = json_member(doc, "source");
  long long pair_id;
  if (!source || source->type != JSON_STRING ||
      (strcmp(source->string, "shop") && strcmp(source->string, "user")))
    return ingest_fail(c->b, "%s: needs 'source': \"shop\" or \"user\"", c->path);
  if (!json_integer(json_member(doc, "pair_id"), INT32_MIN, INT32_MAX, &pair_id))
    return ingest_fail(c->b, "%s: needs an integer 'pair_id'", c->path);
  c->b->header->photo_source = !strcmp(source->string, "user");
  c->b->header->pair_id = (int32_t)pair_id;
  *annotations = fp_calloc((size_t)doc->count + 1, sizeof **annotations);
  for (int m = 0; m < doc->count; m++) {
    int item = item_number(doc->keys[m]);
    if (!item) continue;
    if (read_item(c, &s->map, &doc->items[m], item, &(*annotations)[*count])) return -1;
    ++*count;
  }
  qsort(*annotations, (size_t)*count, sizeof **annotations, compare_items);
  return 0;
}

/* Rasterises each drawn item (the union of its polygons) into its own 0/1
 * coverage, then paints them largest first. */
static void paint(const ingest_source *s, garment_annotation *annotations, int count, int height,
                  int width, uint8_t *labels) {
  size_t pixels = (size_t)height * width;
  uint8_t *coverage = fp_calloc((size_t)count, pixels);
  int64_t *areas = fp_malloc((size_t)count * sizeof *areas);
  int *order = fp_malloc((size_t)count * sizeof *order);
  double *xy = NULL;
  int xy_capacity = 0;
  for (int i = 0; i < count; i++) {
    const json_value *polygons = annotations[i].segmentation;
    areas[i] = 0;
    for (int p = 0; annotations[i].target != LABELMAP_DROP && p < polygons->count; p++) {
      const json_value *polygon = &polygons->items[p];
      if (polygon->count > xy_capacity) {
        xy_capacity = polygon->count;
        xy = realloc(xy, (size_t)xy_capacity * sizeof *xy);
        FP_CHECK(xy, "out of memory");
      }
      for (int k = 0; k < polygon->count; k++) xy[k] = polygon->items[k].number;
      areas[i] += polygon_fill(xy, polygon->count / 2, height, width, 1, coverage + i * pixels);
    }
  }
  memset(labels, (uint8_t)s->map.target[0], pixels);
  ingest_order_by_area(areas, count, order);
  for (int k = 0; k < count; k++) {
    const uint8_t *covered = coverage + order[k] * pixels;
    uint8_t value = (uint8_t)annotations[order[k]].target;
    for (size_t p = 0; p < pixels; p++)
      if (covered[p]) labels[p] = value;
  }
  free(xy);
  free(order);
  free(areas);
  free(coverage);
}

/* The box in the letterboxed image: per-axis factors resized/source, plus the offset. */
static void letterbox_box(const ingest_header *h, const float source_box[4], float box[4]) {
  double fx = (double)h->box.resized_w / h->source_width;
  double fy = (double)h->box.resized_h / h->source_height;
  box[0] = (float)(h->box.offset_x + source_box[0] * fx);
  box[1] = (float)(h->box.offset_y + source_box[1] * fy);
  box[2] = (float)(h->box.offset_x + source_box[2] * fx);
  box[3] = (float)(h->box.offset_y + source_box[3] * fy);
}

static void deepfashion2_process(const ingest_source *s, int set, int64_t index, ingest_buffer *b) {
  const char *id = s->sets[set].ids[index];
  char json_path[4096], photo_path[4096];
  snprintf(json_path, sizeof json_path, "%s/annos/%s.json", s->root, id);
  snprintf(photo_path, sizeof photo_path, "%s/image/%s.jpg", s->root, id);
  json_value *doc = json_parse_file(json_path, b->header->reason, sizeof b->header->reason);
  if (!doc) return;
  json_context c = {json_path, b};
  garment_annotation *annotations;
  int count;
  int status = read_annotations(s, &c, doc, &annotations, &count);
  for (int i = 0; status == 0 && i < count; i++)
    if (annotations[i].target == LABELMAP_EXCLUDE) {
      b->header->status = INGEST_EXCLUDED;
      status = 1;
    }
  if (status == 0) status = ingest_read_photo(b, photo_path);
  if (status == 0) {
    int h = b->header->source_height, w = b->header->source_width;
    uint8_t *labels = fp_malloc((size_t)h * w);
    paint(s, annotations, count, h, w, labels);
    ingest_store_mask(b, labels);
    free(labels);
    for (int i = 0; i < count; i++) {
      letterbox_box(b->header, annotations[i].garment.source_box, annotations[i].garment.box);
      ingest_add_garment(b, &annotations[i].garment);
    }
    b->header->status = INGEST_OK;
  }
  free(annotations);
  json_free(doc);
}

const ingest_source_type ingest_deepfashion2 = {
    "deepfashion2",
    "deepfashion2_13",
    "  deepfashion2: DIR/image/NAME.jpg, DIR/annos/NAME.json (source, pair_id, item1..N\n"
    "    with category_id, segmentation polygons, bounding_box, style, ...). Polygons are\n"
    "    filled even-odd at pixel centres; the smaller of two overlapping items wins;\n"
    "    every item's box and attributes go to /items.\n",
    deepfashion2_open,
    deepfashion2_process,
    NULL};
