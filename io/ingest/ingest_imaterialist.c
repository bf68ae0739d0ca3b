/* iMaterialist (Fashion), both Kaggle releases: DIR/train.csv with one row
 * per instance, DIR/label_descriptions.json (`categories`: {id, name, ...},
 * optional `attributes`: {id, ...}) and the photos DIR/train/<id>.jpg.
 *   2019 (FGVC6): columns ImageId, EncodedPixels, Height, Width, ClassId;
 *     ImageId "<id>.jpg", ClassId "<category>[_<attribute>...]".
 *   2020 (FGVC7): the same and AttributesIds; ImageId "<id>", ClassId
 *     "<category>", AttributesIds "" or "<attribute>,<attribute>,...".
 * The header tells the two apart (AttributesIds or not); an ImageId's ".jpg"
 * is dropped wherever it is present, so either release gives the same ids.
 * Attribute ids are checked (syntax, and against `attributes` when the json
 * has it) and stored with each row's category (/instances, /attribute_ids). The label map sees
 * source class 0 as background and category c as c + 1. Overlaps: the smaller instance wins. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "csv.h"
#include "ingest_source.h"
#include "json.h"
#include "rle.h"

/* The 2019 columns, then the one 2020 adds. */
enum {
  COLUMN_IMAGE,
  COLUMN_PIXELS,
  COLUMN_HEIGHT,
  COLUMN_WIDTH,
  COLUMN_CLASS,
  COLUMN_ATTRIBUTES,
  COLUMN_COUNT
};
#define REQUIRED_COLUMNS COLUMN_ATTRIBUTES
static const char *column_names[COLUMN_COUNT] = {"ImageId", "EncodedPixels", "Height",
                                                 "Width",   "ClassId",       "AttributesIds"};

typedef enum layout { LAYOUT_2019, LAYOUT_2020 } layout;

#define MAX_SIDE 100000        /* largest Height or Width accepted */
#define MAX_ATTRIBUTE 99999999 /* largest attribute id accepted in label_descriptions.json */
#define PHOTO_EXTENSION ".jpg"

typedef struct row_ref {
  int64_t offset; /* where the row starts in train.csv */
  long line;
} row_ref;

typedef struct imaterialist_index {
  char csv_path[4096];
  csv_reader *csv;           /* rows are read again when their image is processed */
  int columns[COLUMN_COUNT]; /* -1 for AttributesIds in the 2019 layout */
  layout layout;
  int category_count;
  char **source_names; /* [category_count + 1]: "background", then the categories */
  /* label_descriptions.json's attribute ids, sorted; NULL when it has no
   * `attributes` (then any attribute id is accepted) */
  long *attribute_ids;
  int attribute_count;
  int64_t *first_row; /* image i has rows[first_row[i] .. first_row[i+1]) */
  row_ref *rows;      /* by image id, then line */
} imaterialist_index;

static int compare_longs(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return x < y ? -1 : x > y;
}

/* The ids of `attributes` (2019: 92, 0..91; 2020: 294, not contiguous). */
static void read_attributes(imaterialist_index *x, const char *path, const json_value *list) {
  if (!list) return;
  FP_CHECK(list->type == JSON_ARRAY, "%s:%d:%d: 'attributes' must be an array", path, list->line,
           list->column);
  x->attribute_count = list->count;
  x->attribute_ids = fp_malloc(((size_t)list->count + 1) * sizeof *x->attribute_ids);
  for (int a = 0; a < list->count; a++) {
    const json_value *entry = &list->items[a];
    long long id;
    FP_CHECK(json_integer(json_member(entry, "id"), 0, MAX_ATTRIBUTE, &id),
             "%s:%d:%d: attributes[%d]: needs an integer 'id' in 0..%d", path, entry->line,
             entry->column, a, MAX_ATTRIBUTE);
    x->attribute_ids[a] = (long)id;
  }
  qsort(x->attribute_ids, (size_t)list->count, sizeof *x->attribute_ids, compare_longs);
  for (int a = 1; a < list->count; a++)
    FP_CHECK(x->attribute_ids[a] != x->attribute_ids[a - 1], "%s: attribute id %ld appears twice",
             path, x->attribute_ids[a]);
}

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
  read_attributes(x, path, json_member(doc, "attributes"));
  json_free(doc);
}

/* The header as read, fields joined by ',' (cut to fit), for messages. */
static void header_text(const csv_record *header, char *text, size_t size) {
  size_t used = 0;
  text[0] = '\0';
  for (int f = 0; f < header->count && used + 1 < size; f++) {
    int n = snprintf(text + used, size - used, "%s%s", f ? "," : "", header->fields[f]);
    if (n < 0) break;
    used += (size_t)n;
  }
  if (used >= size && size > 4) strcpy(text + size - 4, "...");
}

/* The 2019 columns must all be there; AttributesIds makes it the 2020 layout. */
static void find_columns(imaterialist_index *x, const csv_record *header) {
  for (int c = 0; c < COLUMN_COUNT; c++) {
    x->columns[c] = -1;
    for (int f = 0; f < header->count; f++)
      if (!strcmp(header->fields[f], column_names[c])) {
        FP_CHECK(x->columns[c] < 0, "%s:1: column %s appears twice", x->csv_path, column_names[c]);
        x->columns[c] = f;
      }
    if (c < REQUIRED_COLUMNS && x->columns[c] < 0) {
      char text[256];
      header_text(header, text, sizeof text);
      FP_FATAL("%s:1: the header has no column %s, so it is neither iMaterialist layout: expected "
               "ImageId, EncodedPixels, Height, Width, ClassId (2019, FGVC6) or those and "
               "AttributesIds (2020, FGVC7), in any order; the header is '%s'",
               x->csv_path, column_names[c], text);
    }
  }
  x->layout = x->columns[COLUMN_ATTRIBUTES] >= 0 ? LAYOUT_2020 : LAYOUT_2019;
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

/* The id of the photo DIR/train/<id>.jpg: the ImageId without ".jpg" (2019
 * writes "<id>.jpg", 2020 "<id>"). */
static void image_id(const imaterialist_index *x, const char *image, long line,
                     char id[DATASET_ID_LENGTH]) {
  size_t length = strlen(image), extension = strlen(PHOTO_EXTENSION);
  if (length >= extension && !strcmp(image + length - extension, PHOTO_EXTENSION))
    length -= extension;
  FP_CHECK(length > 0 && length < DATASET_ID_LENGTH,
           "%s:%ld: ImageId '%s' is empty or longer than %d characters (without %s)", x->csv_path,
           line, image, DATASET_ID_LENGTH - 1, PHOTO_EXTENSION);
  memcpy(id, image, length);
  id[length] = '\0';
  FP_CHECK(!strchr(id, '/') && strcmp(id, ".") && strcmp(id, ".."),
           "%s:%ld: ImageId '%s' is not a file name", x->csv_path, line, image);
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
    if (count == capacity) {
      capacity *= 2;
      rows = realloc(rows, (size_t)capacity * sizeof *rows);
      FP_CHECK(rows, "%s: out of memory for %lld rows", x->csv_path, (long long)capacity);
    }
    image_id(x, record.fields[x->columns[COLUMN_IMAGE]], record.line, rows[count].image);
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
  s->sets[0] = (ingest_set){.kind = "annotated", .suffix = "", .has_masks = 1, .has_instances = 1};
  snprintf(x->csv_path, sizeof x->csv_path, "%s/train.csv", s->root);
  index_rows(x, &s->sets[0]);
  FP_CHECK(s->sets[0].count > 0, "%s: no rows after the header", x->csv_path);
}

static void imaterialist_close(ingest_source *s) {
  imaterialist_index *x = s->state;
  csv_close(x->csv);
  for (int c = 0; c <= x->category_count; c++) free(x->source_names[c]);
  free(x->source_names);
  free(x->attribute_ids);
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

/* One train.csv row: its category, attribute ids and mask. */
typedef struct instance {
  long category;
  int16_t target;
  int32_t *attribute_ids;
  int32_t attribute_count;
  rle_run *runs;
  int64_t run_count, area;
} instance;

/* Reads a list of attribute ids, `separator` between them, into out->attribute_ids: "28_48"
 * (2019, ClassId after its category and '_') or "115,136" (2020's AttributesIds, which may be
 * empty). Returns 0; -1 when the list is malformed; -2 with *unknown set to an id that
 * label_descriptions.json does not list. */
static int read_attributes_of(const imaterialist_index *x, const char *text, char separator,
                              instance *out, long *unknown) {
  if (!*text && separator == ',') return 0;
  out->attribute_ids = fp_malloc((strlen(text) / 2 + 1) * sizeof *out->attribute_ids);
  for (;;) {
    long id = parse_count(&text);
    if (id < 0) return -1;
    if (x->attribute_ids && !bsearch(&id, x->attribute_ids, (size_t)x->attribute_count,
                                     sizeof *x->attribute_ids, compare_longs)) {
      *unknown = id;
      return -2;
    }
    out->attribute_ids[out->attribute_count++] = (int32_t)id;
    if (*text == '\0') return 0;
    if (*text++ != separator) return -1;
  }
}

/* The category and attribute ids of a row (ClassId's tail in 2019, AttributesIds in 2020) into
 * out; -1 with the reason set. */
static int parse_class(const imaterialist_index *x, const csv_record *record, long line,
                       instance *out, ingest_buffer *b) {
  const char *path = x->csv_path, *class_text = record->fields[x->columns[COLUMN_CLASS]];
  const char *text = class_text, *attributes, *column;
  long category = parse_count(&text);
  char separator;
  if (x->layout == LAYOUT_2020) {
    if (category < 0 || *text != '\0')
      return ingest_fail(b,
                         "%s:%ld: ClassId '%s' is not <category> (2020 layout, the header has "
                         "AttributesIds: attributes go there, not after '_')",
                         path, line, class_text);
    attributes = record->fields[x->columns[COLUMN_ATTRIBUTES]];
    column = "AttributesIds";
    separator = ',';
  } else {
    if (category < 0 || (*text != '\0' && *text != '_'))
      return ingest_fail(b, "%s:%ld: ClassId '%s' is not <category>[_<attribute>...]", path, line,
                         class_text);
    attributes = *text ? text + 1 : NULL; /* NULL: "<category>" alone */
    column = "ClassId";
    separator = '_';
  }
  if (category >= x->category_count)
    return ingest_fail(b, "%s:%ld: unknown class id %ld (label_descriptions.json has 0..%d)", path,
                       line, category, x->category_count - 1);
  long unknown = -1;
  int status = attributes ? read_attributes_of(x, attributes, separator, out, &unknown) : 0;
  if (status == -1 && x->layout == LAYOUT_2020)
    return ingest_fail(b, "%s:%ld: AttributesIds '%s' is not empty or <attribute>[,<attribute>...]",
                       path, line, attributes);
  if (status == -1)
    return ingest_fail(b, "%s:%ld: ClassId '%s' is not <category>[_<attribute>...]", path, line,
                       class_text);
  if (status == -2)
    return ingest_fail(b,
                       "%s:%ld: %s '%s': attribute id %ld is not in label_descriptions.json's "
                       "attributes",
                       path, line, column, x->layout == LAYOUT_2020 ? attributes : class_text,
                       unknown);
  out->category = category;
  return 0;
}

static long parse_side(const char *text) {
  long value = parse_count(&text);
  return *text == '\0' && value >= 1 && value <= MAX_SIDE ? value : -1;
}

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
  long height = parse_side(height_text), width = parse_side(width_text);
  if (height < 0 || width < 0)
    return ingest_fail(b, "%s:%ld: Height '%s' and Width '%s' must be integers in 1..%d", path,
                       ref->line, height_text, width_text, MAX_SIDE);
  if (!size->line) *size = (image_size){height, width, ref->line};
  if (height != size->height || width != size->width)
    return ingest_fail(b, "%s:%ld: Height x Width %ldx%ld differs from %ldx%ld on line %ld", path,
                       ref->line, height, width, size->height, size->width, size->line);
  if (parse_class(x, &record, ref->line, out, b)) return -1;
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
      for (int i = 0; i < count; i++)
        ingest_add_instance(b, (int32_t)instances[i].category, instances[i].attribute_ids,
                            instances[i].attribute_count);
      b->header->status = INGEST_OK;
    }
  }
  for (int i = 0; i < count; i++) {
    free(instances[i].runs);
    free(instances[i].attribute_ids);
  }
  free(instances);
}

const ingest_source_type ingest_imaterialist = {
    "imaterialist",
    "imaterialist46",
    "  imaterialist: DIR/train.csv (ImageId, EncodedPixels, Height, Width, ClassId: 2019;\n"
    "    and AttributesIds: 2020), DIR/label_descriptions.json, DIR/train/<id>.jpg (ImageId\n"
    "    without .jpg). Source class 0 is background, category c is c + 1; the smaller of\n"
    "    two overlapping instances wins.\n",
    imaterialist_open,
    imaterialist_process,
    imaterialist_close};
