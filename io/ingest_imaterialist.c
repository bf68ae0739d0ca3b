/* iMaterialist (Fashion) 2019: DIR/train.csv with one row per instance
 * (columns ImageId, EncodedPixels, Height, Width, ClassId, in any order),
 * DIR/label_descriptions.json (`categories`: {id, name, ...}) and the photos
 * DIR/train/<ImageId>.jpg. The label map sees source class 0 as background
 * and category c as c + 1. Overlaps: the smaller instance wins. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "csv.h"
#include "ingest_source.h"
#include "json.h"
#include "rle.h"

enum { COLUMN_IMAGE, COLUMN_PIXELS, COLUMN_HEIGHT, COLUMN_WIDTH, COLUMN_CLASS, COLUMN_COUNT };
static const char *column_names[COLUMN_COUNT] = {"ImageId", "EncodedPixels", "Height", "Width",
                                                 "ClassId"};

#define MAX_SIDE 100000 /* largest Height or Width accepted */

typedef struct row_ref {
  int64_t offset; /* where the row starts in train.csv */
  long line;
} row_ref;

typedef struct imaterialist_index {
  char csv_path[4096];
  csv_reader *csv; /* rows are read again when their image is processed */
  int columns[COLUMN_COUNT];
  int category_count;
  char **source_names; /* [category_count + 1]: "background", then the categories */
  int64_t *first_row;  /* image i has rows[first_row[i] .. first_row[i+1]) */
  row_ref *rows;       /* by image id, then line */
} imaterialist_index;

static void read_categories(imaterialist_index *x, const char *root) {
  char path[4096], error[1024];
  snprintf(path, sizeof path, "%s/label_descriptions.json", root);
  json_value *doc = json_parse_file(path, error, sizeof error);
  FP_CHECK(doc, "%s", error);
  const json_value *list = json_member(doc, "categories");
  FP_CHECK(list && list->type == JSON_ARRAY && list->count > 0 && list->count < LABELMAP_IGNORE,
           "%s: needs a 'categories' array of 1 to %d entries", path, LABELMAP_IGNORE - 1);
  x->category_count = list->count;
  x->source_names = fp_calloc((size_t)list->count + 1, sizeof *x->source_names);
  x->source_names[0] = strdup("background");
  FP_CHECK(x->source_names[0], "out of memory");
  for (int c = 0; c < list->count; c++) {
    const json_value *entry = &list->items[c], *name = json_member(entry, "name");
    long long id;
    FP_CHECK(json_integer(json_member(entry, "id"), 0, list->count - 1, &id),
             "%s:%d:%d: categories[%d]: needs an integer 'id' in 0..%d", path, entry->line,
             entry->column, c, list->count - 1);
    FP_CHECK(name && name->type == JSON_STRING && name->string[0],
             "%s:%d:%d: categories[%d]: needs a non-empty string 'name'", path, entry->line,
             entry->column, c);
    FP_CHECK(!x->source_names[id + 1], "%s:%d:%d: categories[%d]: id %lld appears twice", path,
             entry->line, entry->column, c, id);
    x->source_names[id + 1] = strdup(name->string);
    FP_CHECK(x->source_names[id + 1], "out of memory");
  }
  json_free(doc);
}

static void find_columns(imaterialist_index *x, const csv_record *header) {
  for (int c = 0; c < COLUMN_COUNT; c++) {
    x->columns[c] = -1;
    for (int f = 0; f < header->count; f++)
      if (!strcmp(header->fields[f], column_names[c])) {
        FP_CHECK(x->columns[c] < 0, "%s:1: column %s appears twice", x->csv_path, column_names[c]);
        x->columns[c] = f;
      }
    FP_CHECK(x->columns[c] >= 0, "%s:1: the header has no column %s", x->csv_path, column_names[c]);
  }
}

typedef struct indexed_row {
  char image[DATASET_ID_LENGTH];
  row_ref ref;
} indexed_row;

static int compare_rows(const void *a, const void *b) {
  const indexed_row *x = a, *y = b;
  int by_image = strcmp(x->image, y->image);
  if (by_image) return by_image;
  return x->ref.line < y->ref.line ? -1 : x->ref.line > y->ref.line;
}

static void check_image_id(const imaterialist_index *x, const char *id, long line) {
  size_t length = strlen(id);
  FP_CHECK(length > 0 && length < DATASET_ID_LENGTH,
           "%s:%ld: ImageId '%s' is empty or longer than %d characters", x->csv_path, line, id,
           DATASET_ID_LENGTH - 1);
  FP_CHECK(!strchr(id, '/') && strcmp(id, ".") && strcmp(id, ".."),
           "%s:%ld: ImageId '%s' is not a file name", x->csv_path, line, id);
}

/* Reads every row's ImageId and position; groups the rows by image. */
static void index_rows(imaterialist_index *x, ingest_set *set) {
  char error[1024];
  x->csv = csv_open(x->csv_path, error, sizeof error);
  FP_CHECK(x->csv, "%s", error);
  csv_record record;
  int status = csv_next(x->csv, &record, error, sizeof error);
  FP_CHECK(status >= 0, "%s", error);
  FP_CHECK(status == 1, "%s: empty file (expected a header line)", x->csv_path);
  find_columns(x, &record);
  int64_t count = 0, capacity = 1 << 16;
  indexed_row *rows = fp_malloc((size_t)capacity * sizeof *rows);
  while ((status = csv_next(x->csv, &record, error, sizeof error)) == 1) {
    const char *id = record.fields[x->columns[COLUMN_IMAGE]];
    check_image_id(x, id, record.line);
    if (count == capacity) {
      capacity *= 2;
      rows = realloc(rows, (size_t)capacity * sizeof *rows);
      FP_CHECK(rows, "%s: out of memory for %lld rows", x->csv_path, (long long)capacity);
    }
    snprintf(rows[count].image, sizeof rows[count].image, "%s", id);
    rows[count++].ref = (row_ref){record.offset, record.line};
  }
  FP_CHECK(status == 0, "%s", error);
  qsort(rows, (size_t)count, sizeof *rows, compare_rows);
  x->rows = fp_malloc((size_t)count * sizeof *x->rows);
  x->first_row = fp_malloc(((size_t)count + 1) * sizeof *x->first_row);
  set->ids = fp_malloc((size_t)count * sizeof *set->ids);
  set->count = 0;
  for (int64_t r = 0; r < count; r++) {
    if (r == 0 || strcmp(rows[r].image, rows[r - 1].image)) {
      x->first_row[set->count] = r;
      memcpy(set->ids[set->count++], rows[r].image, DATASET_ID_LENGTH);
    }
    x->rows[r] = rows[r].ref;
  }
  x->first_row[set->count] = count;
  free(rows);
}

static void imaterialist_open(ingest_source *s, const char *labels) {
  imaterialist_index *x = fp_calloc(1, sizeof *x);
  s->state = x;
  read_categories(x, s->root);
  labelmap_load(&s->map, labels, x->source_names, x->category_count + 1);
  FP_CHECK(s->map.target[0] >= 0 || s->map.target[0] == LABELMAP_IGNORE,
           "label map %s: source class 0 (background) must map to a class or ignore", s->map.path);
  s->set_count = 1;
  s->sets[0] = (ingest_set){"annotated", "", 1, 0, 0, NULL};
  snprintf(x->csv_path, sizeof x->csv_path, "%s/train.csv", s->root);
  index_rows(x, &s->sets[0]);
  FP_CHECK(s->sets[0].count > 0, "%s: no rows after the header", x->csv_path);
}

static void imaterialist_close(ingest_source *s) {
  imaterialist_index *x = s->state;
  csv_close(x->csv);
  for (int c = 0; c <= x->category_count; c++) free(x->source_names[c]);
  free(x->source_names);
  free(x->first_row);
  free(x->rows);
  free(x);
}

/* A decimal number of 1 to 9 digits; -1 otherwise. */
static long parse_count(const char **text) {
  const char *s = *text;
  long value = 0;
  int digits = 0;
  for (; *s >= '0' && *s <= '9' && digits < 10; s++, digits++) value = value * 10 + (*s - '0');
  if (digits == 0 || digits > 9) return -1;
  *text = s;
  return value;
}

/* "6" or "6_28_48": the category before the first '_', attribute ids after. */
static long parse_class_id(const char *text) {
  long category = parse_count(&text);
  while (category >= 0 && *text == '_') {
    text++;
    if (parse_count(&text) < 0) return -1;
  }
  return category >= 0 && *text == '\0' ? category : -1;
}

static long parse_side(const char *text) {
  long value = parse_count(&text);
  return *text == '\0' && value >= 1 && value <= MAX_SIDE ? value : -1;
}

typedef struct instance {
  long category;
  int16_t target;
  rle_run *runs;
  int64_t run_count, area;
} instance;

/* The image's size as its rows give it, the first row's line for messages. */
typedef struct image_size {
  long height, width, line;
} image_size;

static int read_instance(const ingest_source *s, const row_ref *ref, image_size *size,
                         instance *out, ingest_buffer *b) {
  imaterialist_index *x = s->state;
  const char *path = x->csv_path;
  char error[DATASET_REASON_LENGTH];
  csv_record record;
  if (csv_seek(x->csv, ref->offset, ref->line, error, sizeof error) ||
      csv_next(x->csv, &record, error, sizeof error) != 1)
    return ingest_fail(b, "%s (reading the row again)", error);
  const char *height_text = record.fields[x->columns[COLUMN_HEIGHT]];
  const char *width_text = record.fields[x->columns[COLUMN_WIDTH]];
  const char *class_text = record.fields[x->columns[COLUMN_CLASS]];
  long height = parse_side(height_text), width = parse_side(width_text);
  if (height < 0 || width < 0)
    return ingest_fail(b, "%s:%ld: Height '%s' and Width '%s' must be integers in 1..%d", path,
                       ref->line, height_text, width_text, MAX_SIDE);
  if (!size->line) *size = (image_size){height, width, ref->line};
  if (height != size->height || width != size->width)
    return ingest_fail(b, "%s:%ld: Height x Width %ldx%ld differs from %ldx%ld on line %ld", path,
                       ref->line, height, width, size->height, size->width, size->line);
  out->category = parse_class_id(class_text);
  if (out->category < 0)
    return ingest_fail(b, "%s:%ld: ClassId '%s' is not <category>[_<attribute>...]", path,
                       ref->line, class_text);
  if (out->category >= x->category_count)
    return ingest_fail(b, "%s:%ld: unknown class id %ld (label_descriptions.json has 0..%d)", path,
                       ref->line, out->category, x->category_count - 1);
  out->target = s->map.target[out->category + 1];
  if (out->target == LABELMAP_UNKNOWN)
    return ingest_fail(b, "%s:%ld: class id %ld (%s) is not in label map %s", path, ref->line,
                       out->category, x->source_names[out->category + 1], s->map.path);
  if (rle_parse(record.fields[x->columns[COLUMN_PIXELS]], (int64_t)height * width, &out->runs,
                &out->run_count, &out->area, error, sizeof error))
    return ingest_fail(b, "%s:%ld: EncodedPixels: %s", path, ref->line, error);
  return 0;
}

/* Paints the instances the map draws (not drop), the smaller on top. */
static void paint(const ingest_source *s, const instance *instances, int count, int height,
                  int width, uint8_t *labels) {
  memset(labels, (uint8_t)s->map.target[0], (size_t)height * width);
  int64_t *areas = fp_malloc((size_t)count * sizeof *areas);
  int *order = fp_malloc((size_t)count * sizeof *order);
  for (int i = 0; i < count; i++) areas[i] = instances[i].area;
  ingest_order_by_area(areas, count, order);
  for (int k = 0; k < count; k++) {
    const instance *in = &instances[order[k]];
    if (in->target != LABELMAP_DROP)
      rle_paint(in->runs, in->run_count, height, width, (uint8_t)in->target, labels);
  }
  free(order);
  free(areas);
}

static void imaterialist_process(const ingest_source *s, int set, int64_t index, ingest_buffer *b) {
  const imaterialist_index *x = s->state;
  const char *id = s->sets[set].ids[index];
  int count = (int)(x->first_row[index + 1] - x->first_row[index]);
  instance *instances = fp_calloc((size_t)count, sizeof *instances);
  image_size size = {0, 0, 0};
  int status = 0, excluded = 0;
  for (int i = 0; i < count && status == 0; i++) {
    status = read_instance(s, &x->rows[x->first_row[index] + i], &size, &instances[i], b);
    if (status == 0 && instances[i].target == LABELMAP_EXCLUDE) excluded = 1;
  }
  if (status == 0 && excluded) b->header->status = INGEST_EXCLUDED;
  if (status == 0 && !excluded) {
    char photo_path[4096];
    snprintf(photo_path, sizeof photo_path, "%s/train/%s.jpg", s->root, id);
    status = ingest_read_photo(b, photo_path);
    if (status == 0) {
      int h = b->header->source_height, w = b->header->source_width;
      if (h != size.height || w != size.width)
        status = ingest_fail(b, "%s:%ld: Height x Width %ldx%ld but %s is %dx%d", x->csv_path,
                             size.line, size.height, size.width, photo_path, h, w);
    }
    if (status == 0) {
      uint8_t *labels = fp_malloc((size_t)size.height * size.width);
      paint(s, instances, count, (int)size.height, (int)size.width, labels);
      ingest_store_mask(b, labels);
      free(labels);
      b->header->status = INGEST_OK;
    }
  }
  for (int i = 0; i < count; i++) free(instances[i].runs);
  free(instances);
}

const ingest_source_type ingest_imaterialist = {
    "imaterialist",
    "imaterialist46",
    "  imaterialist: DIR/train.csv (ImageId, EncodedPixels, Height, Width, ClassId),\n"
    "    DIR/label_descriptions.json, DIR/train/<ImageId>.jpg. Source class 0 is\n"
    "    background, category c is c + 1; the smaller of two overlapping instances wins.\n",
    imaterialist_open,
    imaterialist_process,
    imaterialist_close};
