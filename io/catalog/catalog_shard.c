#include "catalog_shard.h"

#include <hdf5.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "catalog_files.h"
#include "check.h"
#include "h5check.h"
#include "h5zstd.h"

#define TABLE_CHUNK_ROWS 64 /* rows per HDF5 chunk of the per-image tables */
#define CATALOG_SCHEMA_VERSION 1

typedef enum field {
  F_IDS,
  F_CONTENT_HASH,
  F_CATALOG_INDEX,
  F_SOURCE_SIZE,
  F_LETTERBOX,
  F_PRODUCT_TYPE,
  F_REUSED,
  F_PIXEL_FRACTION,
  F_BBOX,
  F_MEAN_CONFIDENCE,
  F_MEAN_RGB,
  F_MEAN_LAB,
  F_COLOUR,
  F_MASKS,
  F_MASKS_SOURCE,
  FIELD_COUNT
} field;

const char *const catalog_row_datasets[] = {
    "/ids",          "/content_hash", "/catalog_index",  "/source_size", "/letterbox",
    "/product_type", "/reused",       "/pixel_fraction", "/bbox",        "/mean_confidence",
    "/mean_rgb",     "/mean_lab",     "/colour",         "/masks",       "/masks_source",
};
const int catalog_row_dataset_count = FIELD_COUNT;

/* The string types, made once per file handle. */
typedef struct types {
  hid_t id, product_type, reason, failure;
} types;

static types make_types(void) {
  types t;
  t.id = h5_fixed_string_type(CATALOG_ID_LENGTH);
  t.product_type = h5_fixed_string_type(PRIOR_TYPE_LENGTH);
  t.reason = h5_fixed_string_type(CATALOG_REASON_LENGTH);
  t.failure = H5_ID(H5Tcreate(H5T_COMPOUND, sizeof(catalog_failure)), "/failed type");
  H5_OK(H5Tinsert(t.failure, "id", offsetof(catalog_failure, id), t.id), "/failed type");
  H5_OK(H5Tinsert(t.failure, "content_hash", offsetof(catalog_failure, content_hash),
                  H5T_NATIVE_UINT64),
        "/failed type");
  H5_OK(H5Tinsert(t.failure, "catalog_index", offsetof(catalog_failure, catalog_index),
                  H5T_NATIVE_INT64),
        "/failed type");
  H5_OK(H5Tinsert(t.failure, "reason", offsetof(catalog_failure, reason), t.reason),
        "/failed type");
  return t;
}

hid_t catalog_failure_type(void) {
  types t = make_types();
  hid_t failure = H5_ID(H5Tcopy(t.failure), "/failed type");
  H5Tclose(t.failure);
  H5Tclose(t.reason);
  H5Tclose(t.product_type);
  H5Tclose(t.id);
  return failure;
}

static void close_types(types *t) {
  H5Tclose(t->failure);
  H5Tclose(t->reason);
  H5Tclose(t->product_type);
  H5Tclose(t->id);
}

/* How one field is stored: its row's dims, element types and bytes per row. */
typedef struct field_spec {
  int row_rank;
  hsize_t row_dims[2];
  hid_t file_type, memory_type;
  size_t row_bytes;
} field_spec;

/* t may be NULL when only the sizes are wanted (the string types are then -1). */
static field_spec spec_of(const catalog_layout *l, const types *t, field f) {
  const hid_t id_type = t ? t->id : -1, product_type = t ? t->product_type : -1;
  const hsize_t k = (hsize_t)l->classes;
  field_spec s = {0, {0, 0}, -1, -1, 0};
  switch (f) {
  case F_IDS:
    s = (field_spec){0, {0, 0}, id_type, id_type, CATALOG_ID_LENGTH};
    break;
  case F_CONTENT_HASH:
    s = (field_spec){0, {0, 0}, H5T_STD_U64LE, H5T_NATIVE_UINT64, 8};
    break;
  case F_CATALOG_INDEX:
    s = (field_spec){0, {0, 0}, H5T_STD_I64LE, H5T_NATIVE_INT64, 8};
    break;
  case F_SOURCE_SIZE:
    s = (field_spec){1, {2, 0}, H5T_STD_I32LE, H5T_NATIVE_INT32, 8};
    break;
  case F_LETTERBOX:
    s = (field_spec){1, {5, 0}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 20};
    break;
  case F_PRODUCT_TYPE:
    s = (field_spec){0, {0, 0}, product_type, product_type, PRIOR_TYPE_LENGTH};
    break;
  case F_REUSED:
    s = (field_spec){0, {0, 0}, H5T_STD_U8LE, H5T_NATIVE_UINT8, 1};
    break;
  case F_PIXEL_FRACTION:
  case F_MEAN_CONFIDENCE:
    s = (field_spec){1, {k, 0}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4 * k};
    break;
  case F_BBOX:
    s = (field_spec){2, {k, 4}, H5T_STD_I16LE, H5T_NATIVE_INT16, 8 * k};
    break;
  case F_MEAN_RGB:
  case F_MEAN_LAB:
    s = (field_spec){2, {k, 3}, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 12 * k};
    break;
  case F_COLOUR:
    s = (field_spec){1, {k, 0}, H5T_STD_U8LE, H5T_NATIVE_UINT8, k};
    break;
  case F_MASKS:
    s = (field_spec){2,
                     {(hsize_t)l->height, (hsize_t)l->width},
                     H5T_STD_U8LE,
                     H5T_NATIVE_UINT8,
                     (size_t)l->height * l->width};
    break;
  case F_MASKS_SOURCE:
    s = (field_spec){2,
                     {(hsize_t)l->source_height, (hsize_t)l->source_width},
                     H5T_STD_U8LE,
                     H5T_NATIVE_UINT8,
                     (size_t)l->source_height * l->source_width};
    break;
  case FIELD_COUNT:
    FP_FATAL("spec_of: no such field");
  }
  return s;
}

static int field_stored(const catalog_layout *l, field f) {
  return f != F_MASKS_SOURCE || l->source_masks;
}

static int is_mask(field f) {
  return f == F_MASKS || f == F_MASKS_SOURCE;
}

/* The rows' array of a table field. */
static void *table_data(const catalog_rows *r, field f) {
  switch (f) {
  case F_IDS:
    return r->ids;
  case F_CONTENT_HASH:
    return r->content_hash;
  case F_CATALOG_INDEX:
    return r->catalog_index;
  case F_SOURCE_SIZE:
    return r->source_size;
  case F_LETTERBOX:
    return r->letterbox;
  case F_PRODUCT_TYPE:
    return r->product_type;
  case F_REUSED:
    return r->reused;
  case F_PIXEL_FRACTION:
    return r->pixel_fraction;
  case F_BBOX:
    return r->bbox;
  case F_MEAN_CONFIDENCE:
    return r->mean_confidence;
  case F_MEAN_RGB:
    return r->mean_rgb;
  case F_MEAN_LAB:
    return r->mean_lab;
  case F_COLOUR:
    return r->colour;
  default:
    FP_FATAL("table_data: %s is not a table", catalog_row_datasets[f]);
  }
}

/* ---- rows in memory ---- */

void catalog_rows_init(catalog_rows *r, const catalog_layout *layout, int64_t capacity) {
  memset(r, 0, sizeof *r);
  r->layout = *layout;
  r->capacity = capacity;
  size_t n = (size_t)(capacity > 0 ? capacity : 1), k = (size_t)layout->classes;
  r->ids = fp_calloc(n, sizeof *r->ids);
  r->content_hash = fp_calloc(n, sizeof *r->content_hash);
  r->catalog_index = fp_calloc(n, sizeof *r->catalog_index);
  r->source_size = fp_calloc(n * 2, sizeof *r->source_size);
  r->letterbox = fp_calloc(n * 5, sizeof *r->letterbox);
  r->product_type = fp_calloc(n, sizeof *r->product_type);
  r->reused = fp_calloc(n, sizeof *r->reused);
  r->pixel_fraction = fp_calloc(n * k, sizeof *r->pixel_fraction);
  r->bbox = fp_calloc(n * k * 4, sizeof *r->bbox);
  r->mean_confidence = fp_calloc(n * k, sizeof *r->mean_confidence);
  r->mean_rgb = fp_calloc(n * k * 3, sizeof *r->mean_rgb);
  r->mean_lab = fp_calloc(n * k * 3, sizeof *r->mean_lab);
  r->colour = fp_calloc(n * k, sizeof *r->colour);
  r->mask_zstd = fp_calloc(n, sizeof *r->mask_zstd);
  r->mask_bytes = fp_calloc(n, sizeof *r->mask_bytes);
  r->source_mask_zstd = fp_calloc(n, sizeof *r->source_mask_zstd);
  r->source_mask_bytes = fp_calloc(n, sizeof *r->source_mask_bytes);
}

void catalog_rows_free(catalog_rows *r) {
  for (int64_t i = 0; i < r->capacity; i++) {
    free(r->mask_zstd[i]);
    free(r->source_mask_zstd[i]);
  }
  void *arrays[] = {r->ids,
                    r->content_hash,
                    r->catalog_index,
                    r->source_size,
                    r->letterbox,
                    r->product_type,
                    r->reused,
                    r->pixel_fraction,
                    r->bbox,
                    r->mean_confidence,
                    r->mean_rgb,
                    r->mean_lab,
                    r->colour,
                    r->mask_zstd,
                    r->mask_bytes,
                    r->source_mask_zstd,
                    r->source_mask_bytes};
  for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
  memset(r, 0, sizeof *r);
}

static void check_row(const catalog_rows *r, int64_t row) {
  FP_CHECK(row >= 0 && row < r->capacity, "result row %lld of %lld", (long long)row,
           (long long)r->capacity);
}

image_stats catalog_rows_stats(catalog_rows *r, int64_t row) {
  check_row(r, row);
  size_t k = (size_t)r->layout.classes, i = (size_t)row;
  image_stats s = {r->pixel_fraction + i * k, r->bbox + i * k * 4,     r->mean_confidence + i * k,
                   r->mean_rgb + i * k * 3,   r->mean_lab + i * k * 3, r->colour + i * k};
  return s;
}

static void compress_into(const catalog_rows *r, const uint8_t *data, size_t bytes, uint8_t **out,
                          size_t *out_bytes) {
  size_t capacity = ZSTD_compressBound(bytes);
  uint8_t *compressed = fp_malloc(capacity);
  size_t written = ZSTD_compress(compressed, capacity, data, bytes, r->layout.zstd_level);
  FP_CHECK(!ZSTD_isError(written), "ZSTD_compress of a %zu-byte mask failed: %s", bytes,
           ZSTD_getErrorName(written));
  free(*out);
  *out = realloc(compressed, written);
  FP_CHECK(*out, "out of memory");
  *out_bytes = written;
}

void catalog_rows_set_mask(catalog_rows *r, int64_t row, const uint8_t *mask) {
  check_row(r, row);
  compress_into(r, mask, (size_t)r->layout.height * r->layout.width, &r->mask_zstd[row],
                &r->mask_bytes[row]);
}

void catalog_rows_set_source_mask(catalog_rows *r, int64_t row, const uint8_t *mask) {
  check_row(r, row);
  FP_CHECK(r->layout.source_masks, "source masks are not stored in this layout");
  compress_into(r, mask, (size_t)r->layout.source_height * r->layout.source_width,
                &r->source_mask_zstd[row], &r->source_mask_bytes[row]);
}

static uint8_t *copy_bytes(const uint8_t *data, size_t bytes) {
  if (!data) return NULL;
  uint8_t *copy = fp_malloc(bytes);
  memcpy(copy, data, bytes);
  return copy;
}

void catalog_rows_copy(catalog_rows *to, int64_t to_row, const catalog_rows *from,
                       int64_t from_row) {
  check_row(to, to_row);
  check_row(from, from_row);
  FP_CHECK(!memcmp(&to->layout, &from->layout, sizeof to->layout),
           "catalog_rows_copy between different layouts");
  for (int f = 0; f < FIELD_COUNT; f++) {
    if (is_mask((field)f)) continue;
    size_t bytes = spec_of(&to->layout, NULL, (field)f).row_bytes;
    memcpy((char *)table_data(to, (field)f) + (size_t)to_row * bytes,
           (const char *)table_data(from, (field)f) + (size_t)from_row * bytes, bytes);
  }
  free(to->mask_zstd[to_row]);
  to->mask_zstd[to_row] = copy_bytes(from->mask_zstd[from_row], from->mask_bytes[from_row]);
  to->mask_bytes[to_row] = from->mask_bytes[from_row];
  free(to->source_mask_zstd[to_row]);
  to->source_mask_zstd[to_row] =
      copy_bytes(from->source_mask_zstd[from_row], from->source_mask_bytes[from_row]);
  to->source_mask_bytes[to_row] = from->source_mask_bytes[from_row];
}

/* ---- writer ---- */

struct catalog_shard_writer {
  char path[PATH_MAX], temporary[PATH_MAX];
  catalog_layout layout;
  int64_t rows, failures;
  types t;
  hid_t file, datasets[FIELD_COUNT], failed;
};

static void write_int_attribute(catalog_shard_writer *w, const char *name, int value) {
  hid_t space = H5_ID(H5Screate(H5S_SCALAR), "%s: attribute %s", w->temporary, name);
  hid_t attribute = H5_ID(H5Acreate2(w->file, name, H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT),
                          "%s: attribute %s", w->temporary, name);
  H5_OK(H5Awrite(attribute, H5T_NATIVE_INT, &value), "%s: attribute %s", w->temporary, name);
  H5Aclose(attribute);
  H5Sclose(space);
}

static const char *const layout_attributes[] = {
    "height",        "width",        "num_classes", "source_masks",
    "source_height", "source_width", "zstd_level",  "catalog_schema_version"};

static void layout_values(const catalog_layout *l, int values[8]) {
  int v[8] = {l->height,        l->width,        l->classes,    l->source_masks,
              l->source_height, l->source_width, l->zstd_level, CATALOG_SCHEMA_VERSION};
  memcpy(values, v, sizeof v);
}

static hid_t create_rows_dataset(catalog_shard_writer *w, field f) {
  const char *name = catalog_row_datasets[f];
  field_spec s = spec_of(&w->layout, &w->t, f);
  hsize_t dims[3] = {(hsize_t)w->rows, s.row_dims[0], s.row_dims[1]};
  hid_t space = H5_ID(H5Screate_simple(1 + s.row_rank, dims, NULL), "%s: %s", w->temporary, name);
  hid_t dcpl = H5_ID(H5Pcreate(H5P_DATASET_CREATE), "%s: %s", w->temporary, name);
  H5_OK(H5Pset_obj_track_times(dcpl, 0), "%s: %s", w->temporary, name);
  if (w->rows > 0) {
    hsize_t chunk[3] = {is_mask(f)                   ? 1
                        : w->rows < TABLE_CHUNK_ROWS ? (hsize_t)w->rows
                                                     : TABLE_CHUNK_ROWS,
                        s.row_dims[0], s.row_dims[1]};
    unsigned level = (unsigned)w->layout.zstd_level;
    H5_OK(H5Pset_chunk(dcpl, 1 + s.row_rank, chunk), "%s: %s", w->temporary, name);
    H5_OK(H5Pset_filter(dcpl, H5ZSTD_FILTER_ID, H5Z_FLAG_MANDATORY, 1, &level), "%s: %s",
          w->temporary, name);
  }
  hid_t dataset =
      H5_ID(H5Dcreate2(w->file, name, s.file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), "%s: %s",
            w->temporary, name);
  H5Pclose(dcpl);
  H5Sclose(space);
  return dataset;
}

catalog_shard_writer *catalog_shard_create(const char *path, const catalog_layout *layout,
                                           int64_t rows, int64_t failures) {
  h5zstd_register();
  catalog_shard_writer *w = fp_calloc(1, sizeof *w);
  FP_CHECK(strlen(path) < sizeof w->path, "%s: path too long", path);
  snprintf(w->path, sizeof w->path, "%s", path);
  catalog_begin_temporary(path, w->temporary, sizeof w->temporary);
  w->layout = *layout;
  w->rows = rows;
  w->failures = failures;
  w->t = make_types();
  hid_t fcpl = H5_ID(H5Pcreate(H5P_FILE_CREATE), "%s", w->temporary);
  H5_OK(H5Pset_obj_track_times(fcpl, 0), "%s: root group", w->temporary);
  w->file =
      H5_ID(H5Fcreate(w->temporary, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT), "%s: create", w->temporary);
  H5Pclose(fcpl);
  int values[8];
  layout_values(layout, values);
  for (int a = 0; a < 8; a++) write_int_attribute(w, layout_attributes[a], values[a]);
  for (int f = 0; f < FIELD_COUNT; f++)
    w->datasets[f] = field_stored(layout, (field)f) ? create_rows_dataset(w, (field)f) : -1;
  hsize_t failure_dims[1] = {(hsize_t)failures};
  hid_t space = H5_ID(H5Screate_simple(1, failure_dims, NULL), "%s: /failed", w->temporary);
  hid_t dcpl = H5_ID(H5Pcreate(H5P_DATASET_CREATE), "%s: /failed", w->temporary);
  H5_OK(H5Pset_obj_track_times(dcpl, 0), "%s: /failed", w->temporary);
  w->failed =
      H5_ID(H5Dcreate2(w->file, "/failed", w->t.failure, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
            "%s: /failed", w->temporary);
  H5Pclose(dcpl);
  H5Sclose(space);
  return w;
}

/* Selects rows [first, first + count) of dataset f in *file_space and returns
 * the matching memory space. */
static hid_t select_rows(hid_t dataset, const field_spec *s, int64_t first, int64_t count,
                         const char *file, const char *name, hid_t *file_space) {
  hsize_t start[3] = {(hsize_t)first, 0, 0};
  hsize_t block[3] = {(hsize_t)count, s->row_dims[0], s->row_dims[1]};
  *file_space = H5_ID(H5Dget_space(dataset), "%s: %s", file, name);
  H5_OK(H5Sselect_hyperslab(*file_space, H5S_SELECT_SET, start, NULL, block, NULL),
        "%s: %s rows %lld..%lld", file, name, (long long)first, (long long)(first + count - 1));
  return H5_ID(H5Screate_simple(1 + s->row_rank, block, NULL), "%s: %s", file, name);
}

void catalog_shard_write_rows(catalog_shard_writer *w, int64_t first_row,
                              const catalog_rows *rows) {
  FP_CHECK(first_row >= 0 && first_row + rows->count <= w->rows,
           "%s: rows %lld..%lld outside the %lld rows", w->temporary, (long long)first_row,
           (long long)(first_row + rows->count - 1), (long long)w->rows);
  if (rows->count == 0) return;
  for (int f = 0; f < FIELD_COUNT; f++) {
    if (w->datasets[f] < 0) continue;
    const char *name = catalog_row_datasets[f];
    field_spec s = spec_of(&w->layout, &w->t, (field)f);
    if (!is_mask((field)f)) {
      hid_t file_space, memory = select_rows(w->datasets[f], &s, first_row, rows->count,
                                             w->temporary, name, &file_space);
      H5_OK(H5Dwrite(w->datasets[f], s.memory_type, memory, file_space, H5P_DEFAULT,
                     table_data(rows, (field)f)),
            "%s: %s", w->temporary, name);
      H5Sclose(memory);
      H5Sclose(file_space);
      continue;
    }
    uint8_t *const *chunks = f == F_MASKS ? rows->mask_zstd : rows->source_mask_zstd;
    const size_t *bytes = f == F_MASKS ? rows->mask_bytes : rows->source_mask_bytes;
    for (int64_t r = 0; r < rows->count; r++) {
      FP_CHECK(chunks[r], "%s: row %lld (%s) has no compressed %s", w->temporary,
               (long long)(first_row + r), rows->ids[r], name);
      hsize_t offset[3] = {(hsize_t)(first_row + r), 0, 0};
      H5_OK(H5Dwrite_chunk(w->datasets[f], H5P_DEFAULT, 0, offset, bytes[r], chunks[r]),
            "%s: %s row %lld", w->temporary, name, (long long)(first_row + r));
    }
  }
}

void catalog_shard_write_failures(catalog_shard_writer *w, int64_t first,
                                  const catalog_failure *failures, int64_t count) {
  FP_CHECK(first >= 0 && first + count <= w->failures,
           "%s: failures %lld..%lld outside the %lld records", w->temporary, (long long)first,
           (long long)(first + count - 1), (long long)w->failures);
  if (count == 0) return;
  field_spec s = {0, {0, 0}, w->t.failure, w->t.failure, sizeof(catalog_failure)};
  hid_t file_space,
      memory = select_rows(w->failed, &s, first, count, w->temporary, "/failed", &file_space);
  H5_OK(H5Dwrite(w->failed, w->t.failure, memory, file_space, H5P_DEFAULT, failures), "%s: /failed",
        w->temporary);
  H5Sclose(memory);
  H5Sclose(file_space);
}

void catalog_shard_commit(catalog_shard_writer *w) {
  for (int f = 0; f < FIELD_COUNT; f++)
    if (w->datasets[f] >= 0) H5_OK(H5Dclose(w->datasets[f]), "%s: close", w->temporary);
  H5_OK(H5Dclose(w->failed), "%s: close", w->temporary);
  close_types(&w->t);
  H5_OK(H5Fclose(w->file), "%s: close", w->temporary);
  catalog_commit_temporary(w->temporary, w->path);
  free(w);
}

/* ---- reader ---- */

struct catalog_shard_reader {
  char path[PATH_MAX];
  catalog_layout layout;
  int64_t rows, failures;
  types t;
  hid_t file, datasets[FIELD_COUNT], failed;
};

static int read_int_attribute(const catalog_shard_reader *r, const char *name) {
  htri_t exists = H5_OK(H5Aexists(r->file, name), "%s: attribute %s", r->path, name);
  FP_CHECK(exists > 0, "%s: not a parse_catalog result file (no attribute %s)", r->path, name);
  hid_t attribute = H5_ID(H5Aopen(r->file, name, H5P_DEFAULT), "%s: attribute %s", r->path, name);
  int value;
  H5_OK(H5Aread(attribute, H5T_NATIVE_INT, &value), "%s: attribute %s", r->path, name);
  H5Aclose(attribute);
  return value;
}

static int64_t first_dimension(const catalog_shard_reader *r, hid_t dataset, const char *name) {
  hid_t space = H5_ID(H5Dget_space(dataset), "%s: %s", r->path, name);
  hsize_t dims[3];
  FP_CHECK(H5Sget_simple_extent_ndims(space) >= 1, "%s: %s is a scalar", r->path, name);
  H5_OK(H5Sget_simple_extent_dims(space, dims, NULL), "%s: %s", r->path, name);
  H5Sclose(space);
  return (int64_t)dims[0];
}

catalog_shard_reader *catalog_shard_open(const char *path) {
  h5zstd_register();
  catalog_shard_reader *r = fp_calloc(1, sizeof *r);
  FP_CHECK(strlen(path) < sizeof r->path, "%s: path too long", path);
  snprintf(r->path, sizeof r->path, "%s", path);
  r->file = H5_ID(H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), "%s: open", path);
  int values[8];
  for (int a = 0; a < 8; a++) values[a] = read_int_attribute(r, layout_attributes[a]);
  FP_CHECK(values[7] == CATALOG_SCHEMA_VERSION, "%s: catalog_schema_version %d, expected %d", path,
           values[7], CATALOG_SCHEMA_VERSION);
  r->layout =
      (catalog_layout){values[0], values[1], values[2], values[3], values[4], values[5], values[6]};
  r->t = make_types();
  for (int f = 0; f < FIELD_COUNT; f++) {
    r->datasets[f] = -1;
    if (!field_stored(&r->layout, (field)f)) continue;
    const char *name = catalog_row_datasets[f];
    r->datasets[f] = H5_ID(H5Dopen2(r->file, name, H5P_DEFAULT), "%s: %s", path, name);
    int64_t n = first_dimension(r, r->datasets[f], name);
    if (f == 0) r->rows = n;
    FP_CHECK(n == r->rows, "%s: %s has %lld rows, /ids %lld", path, name, (long long)n,
             (long long)r->rows);
  }
  r->failed = H5_ID(H5Dopen2(r->file, "/failed", H5P_DEFAULT), "%s: /failed", path);
  r->failures = first_dimension(r, r->failed, "/failed");
  return r;
}

int64_t catalog_shard_rows(const catalog_shard_reader *r) {
  return r->rows;
}
int64_t catalog_shard_failures(const catalog_shard_reader *r) {
  return r->failures;
}

static uint8_t *read_raw_chunk(catalog_shard_reader *r, field f, int64_t row, size_t *bytes) {
  const char *name = catalog_row_datasets[f];
  hsize_t offset[3] = {(hsize_t)row, 0, 0}, stored;
  H5_OK(H5Dget_chunk_storage_size(r->datasets[f], offset, &stored), "%s: %s row %lld", r->path,
        name, (long long)row);
  uint8_t *chunk = fp_malloc((size_t)stored);
  uint32_t filters = 0;
  H5_OK(H5Dread_chunk(r->datasets[f], H5P_DEFAULT, offset, &filters, chunk), "%s: %s row %lld",
        r->path, name, (long long)row);
  FP_CHECK(filters == 0, "%s: %s row %lld is stored without its zstd filter (mask 0x%x)", r->path,
           name, (long long)row, filters);
  *bytes = (size_t)stored;
  return chunk;
}

void catalog_shard_read_rows(catalog_shard_reader *r, int64_t first, int64_t count,
                             catalog_rows *out) {
  FP_CHECK(first >= 0 && first + count <= r->rows && count <= out->capacity,
           "%s: rows %lld..%lld of %lld (into %lld)", r->path, (long long)first,
           (long long)(first + count - 1), (long long)r->rows, (long long)out->capacity);
  FP_CHECK(!memcmp(&out->layout, &r->layout, sizeof r->layout),
           "%s: its layout differs from this job's", r->path);
  out->count = count;
  if (count == 0) return;
  for (int f = 0; f < FIELD_COUNT; f++) {
    if (r->datasets[f] < 0) continue;
    const char *name = catalog_row_datasets[f];
    if (!is_mask((field)f)) {
      field_spec s = spec_of(&r->layout, &r->t, (field)f);
      hid_t file_space,
          memory = select_rows(r->datasets[f], &s, first, count, r->path, name, &file_space);
      H5_OK(H5Dread(r->datasets[f], s.memory_type, memory, file_space, H5P_DEFAULT,
                    table_data(out, (field)f)),
            "%s: %s", r->path, name);
      H5Sclose(memory);
      H5Sclose(file_space);
      continue;
    }
    for (int64_t i = 0; i < count; i++) {
      uint8_t **chunk = f == F_MASKS ? &out->mask_zstd[i] : &out->source_mask_zstd[i];
      size_t *bytes = f == F_MASKS ? &out->mask_bytes[i] : &out->source_mask_bytes[i];
      free(*chunk);
      *chunk = read_raw_chunk(r, (field)f, first + i, bytes);
    }
  }
}

void catalog_shard_read_failures(catalog_shard_reader *r, int64_t first, int64_t count,
                                 catalog_failure *out) {
  FP_CHECK(first >= 0 && first + count <= r->failures, "%s: /failed %lld..%lld of %lld", r->path,
           (long long)first, (long long)(first + count - 1), (long long)r->failures);
  if (count == 0) return;
  field_spec s = {0, {0, 0}, r->t.failure, r->t.failure, sizeof(catalog_failure)};
  hid_t file_space,
      memory = select_rows(r->failed, &s, first, count, r->path, "/failed", &file_space);
  H5_OK(H5Dread(r->failed, r->t.failure, memory, file_space, H5P_DEFAULT, out), "%s: /failed",
        r->path);
  H5Sclose(memory);
  H5Sclose(file_space);
}

void catalog_shard_close(catalog_shard_reader *r) {
  if (!r) return;
  for (int f = 0; f < FIELD_COUNT; f++)
    if (r->datasets[f] >= 0) H5Dclose(r->datasets[f]);
  H5Dclose(r->failed);
  close_types(&r->t);
  H5_OK(H5Fclose(r->file), "%s: close", r->path);
  free(r);
}
