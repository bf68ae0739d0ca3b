#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "dataset.h"
#include "durable.h"
#include "h5check.h"
#include "h5zstd.h"
#include "split.h"

#define ROW_CHUNK 256 /* rows per chunk of the small per-image tables */

struct dataset_writer {
  char path[PATH_MAX], temp_path[PATH_MAX];
  dataset_info info;
  hid_t file, images, masks, tags, ids, source_size, letterbox_table;
  hid_t items, pair_ids, photo_sources, item_file_type, item_memory_type;   /* has_garments */
  hid_t instances, attribute_ids, instance_file_type, instance_memory_type; /* has_instances */
  int64_t count, capacity;
  int64_t item_count;         /* rows of /items */
  int64_t instance_count;     /* rows of /instances */
  int64_t attribute_id_count; /* rows of /attribute_ids */
  uint8_t *all_tags;          /* [capacity][num_classes], kept for the split */
  int64_t skipped_count;
  char (*skipped_ids)[DATASET_ID_LENGTH];
  char (*skipped_reasons)[DATASET_REASON_LENGTH];
};

/* The temporary file being written, removed if the process stops early. */
/* The files this process is writing or has written but not yet published: removed if it stops
 * before dataset_publish (exit, FP_FATAL, SIGINT, SIGTERM, SIGHUP). Their names carry the
 * process id, so another process writing the same output never touches them. */
enum { MAX_PENDING = 4 };
static char pending_temp[MAX_PENDING][PATH_MAX], pending_final[MAX_PENDING][PATH_MAX];
static int pending_count;

static void remove_pending_temp(void) {
  for (int i = 0; i < pending_count; i++) unlink(pending_temp[i]);
}

static void remove_pending_temp_on_signal(int sig) {
  remove_pending_temp();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void guard_temp_file(const char *temp_path, const char *final_path) {
  static int installed;
  FP_CHECK(pending_count < MAX_PENDING, "%s: more than %d datasets written at once", temp_path,
           MAX_PENDING);
  if (!installed) {
    FP_CHECK(atexit(remove_pending_temp) == 0, "atexit failed");
    int signals[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t s = 0; s < sizeof signals / sizeof signals[0]; s++)
      FP_CHECK(signal(signals[s], remove_pending_temp_on_signal) != SIG_ERR, "signal(%d) failed",
               signals[s]);
    installed = 1;
  }
  snprintf(pending_temp[pending_count], PATH_MAX, "%s", temp_path);
  snprintf(pending_final[pending_count], PATH_MAX, "%s", final_path);
  pending_count++;
}

void dataset_publish(void) {
  for (int i = 0; i < pending_count; i++) durable_rename(pending_temp[i], pending_final[i]);
  pending_count = 0;
}

dataset_compression dataset_default_image_compression(void) {
  return DATASET_COMPRESSION_NONE;
}

/* A dataset growing along dimension 0, chunked `chunk_rows` rows at a time. */
static hid_t create_growing(dataset_writer *w, const char *name, hid_t type, int rank,
                            const hsize_t *row_dims, hsize_t chunk_rows,
                            dataset_compression compression) {
  hsize_t dims[4] = {0}, max_dims[4] = {H5S_UNLIMITED}, chunk[4] = {chunk_rows};
  for (int d = 1; d < rank; d++) dims[d] = max_dims[d] = chunk[d] = row_dims[d - 1];
  hid_t space = H5_ID(H5Screate_simple(rank, dims, max_dims), "%s: %s", w->temp_path, name);
  hid_t dcpl = H5_ID(H5Pcreate(H5P_DATASET_CREATE), "%s: %s", w->temp_path, name);
  H5_OK(H5Pset_chunk(dcpl, rank, chunk), "%s: %s", w->temp_path, name);
  /* No timestamps: the same input gives a byte-identical file. */
  H5_OK(H5Pset_obj_track_times(dcpl, 0), "%s: %s", w->temp_path, name);
  if (compression == DATASET_COMPRESSION_DEFLATE)
    H5_OK(H5Pset_deflate(dcpl, 1), "%s: %s", w->temp_path, name);
  if (compression == DATASET_COMPRESSION_ZSTD) {
    unsigned level = H5ZSTD_DEFAULT_LEVEL;
    H5_OK(H5Pset_filter(dcpl, H5ZSTD_FILTER_ID, H5Z_FLAG_MANDATORY, 1, &level), "%s: %s",
          w->temp_path, name);
  }
  hid_t dataset = H5_ID(H5Dcreate2(w->file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                        "%s: %s", w->temp_path, name);
  H5Pclose(dcpl);
  H5Sclose(space);
  return dataset;
}

/* The /items row: the image's row in /images, then the garment. */
typedef struct item_row {
  int64_t image;
  dataset_garment garment;
} item_row;

/* The row's compound type with the C struct's layout, from integer and float
 * member types (native for memory, little-endian for the file). */
static hid_t item_row_type(const char *path, hid_t int64_type, hid_t int32_type, hid_t float_type) {
  hid_t type = H5_ID(H5Tcreate(H5T_COMPOUND, sizeof(item_row)), "%s: /items", path);
  hsize_t four = 4;
  hid_t box_type = H5_ID(H5Tarray_create2(float_type, 1, &four), "%s: /items", path);
  struct {
    const char *name;
    size_t offset;
    hid_t type;
  } fields[] = {
      {"image", offsetof(item_row, image), int64_type},
      {"item", offsetof(item_row, garment.item), int32_type},
      {"category_id", offsetof(item_row, garment.category_id), int32_type},
      {"style", offsetof(item_row, garment.style), int32_type},
      {"scale", offsetof(item_row, garment.scale), int32_type},
      {"occlusion", offsetof(item_row, garment.occlusion), int32_type},
      {"zoom_in", offsetof(item_row, garment.zoom_in), int32_type},
      {"viewpoint", offsetof(item_row, garment.viewpoint), int32_type},
      {"source_box", offsetof(item_row, garment.source_box), box_type},
      {"box", offsetof(item_row, garment.box), box_type},
  };
  for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
    H5_OK(H5Tinsert(type, fields[f].name, fields[f].offset, fields[f].type), "%s: /items field %s",
          path, fields[f].name);
  H5Tclose(box_type);
  return type;
}

/* The /instances row: the image's row in /images, the instance's category and where its
 * attribute ids lie in /attribute_ids. */
typedef struct instance_row {
  int64_t image;
  int32_t category_id;
  int32_t attribute_count;
  int64_t attribute_start;
} instance_row;

static hid_t instance_row_type(const char *path, hid_t int64_type, hid_t int32_type) {
  hid_t type = H5_ID(H5Tcreate(H5T_COMPOUND, sizeof(instance_row)), "%s: /instances", path);
  struct {
    const char *name;
    size_t offset;
    hid_t type;
  } fields[] = {
      {"image", offsetof(instance_row, image), int64_type},
      {"category_id", offsetof(instance_row, category_id), int32_type},
      {"attribute_count", offsetof(instance_row, attribute_count), int32_type},
      {"attribute_start", offsetof(instance_row, attribute_start), int64_type},
  };
  for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
    H5_OK(H5Tinsert(type, fields[f].name, fields[f].offset, fields[f].type),
          "%s: /instances field %s", path, fields[f].name);
  return type;
}

dataset_writer *dataset_create(const char *path, const dataset_info *info) {
  FP_CHECK(info->height > 0 && info->width > 0 && info->num_classes > 0 && info->num_classes < 255,
           "%s: %dx%d images with %d classes", path, info->height, info->width, info->num_classes);
  h5zstd_register();
  dataset_writer *w = fp_calloc(1, sizeof *w);
  FP_CHECK(strlen(path) + 32 < sizeof w->path, "%s: path too long", path);
  snprintf(w->path, sizeof w->path, "%s", path);
  snprintf(w->temp_path, sizeof w->temp_path, "%s.tmp.%ld", path, (long)getpid());
  w->info = *info;
  guard_temp_file(w->temp_path, w->path);
  hid_t fcpl = H5_ID(H5Pcreate(H5P_FILE_CREATE), "%s", w->temp_path);
  H5_OK(H5Pset_obj_track_times(fcpl, 0), "%s: root group", w->temp_path);
  w->file =
      H5_ID(H5Fcreate(w->temp_path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT), "%s: create", w->temp_path);
  H5Pclose(fcpl);
  hsize_t hw3[3] = {(hsize_t)info->height, (hsize_t)info->width, 3};
  hsize_t k = (hsize_t)info->num_classes, two = 2, five = 5;
  w->images = create_growing(w, "/images", H5T_STD_U8LE, 4, hw3, 1, info->image_compression);
  if (info->has_masks)
    w->masks = create_growing(w, "/masks", H5T_STD_U8LE, 3, hw3, 1, DATASET_COMPRESSION_ZSTD);
  w->tags = create_growing(w, "/tags", H5T_STD_U8LE, 2, &k, ROW_CHUNK, DATASET_COMPRESSION_NONE);
  hid_t id_type = h5_fixed_string_type(DATASET_ID_LENGTH);
  w->ids = create_growing(w, "/ids", id_type, 1, NULL, ROW_CHUNK, DATASET_COMPRESSION_NONE);
  H5Tclose(id_type);
  w->source_size = create_growing(w, "/source_size", H5T_STD_I32LE, 2, &two, ROW_CHUNK,
                                  DATASET_COMPRESSION_NONE);
  w->letterbox_table = create_growing(w, "/letterbox", H5T_IEEE_F32LE, 2, &five, ROW_CHUNK,
                                      DATASET_COMPRESSION_NONE);
  if (info->has_garments) {
    w->item_file_type = item_row_type(w->temp_path, H5T_STD_I64LE, H5T_STD_I32LE, H5T_IEEE_F32LE);
    w->item_memory_type =
        item_row_type(w->temp_path, H5T_NATIVE_INT64, H5T_NATIVE_INT32, H5T_NATIVE_FLOAT);
    w->items = create_growing(w, "/items", w->item_file_type, 1, NULL, ROW_CHUNK,
                              DATASET_COMPRESSION_NONE);
    w->pair_ids =
        create_growing(w, "/pair_id", H5T_STD_I32LE, 1, NULL, ROW_CHUNK, DATASET_COMPRESSION_NONE);
    w->photo_sources =
        create_growing(w, "/source", H5T_STD_U8LE, 1, NULL, ROW_CHUNK, DATASET_COMPRESSION_NONE);
  }
  if (info->has_instances) {
    w->instance_file_type = instance_row_type(w->temp_path, H5T_STD_I64LE, H5T_STD_I32LE);
    w->instance_memory_type = instance_row_type(w->temp_path, H5T_NATIVE_INT64, H5T_NATIVE_INT32);
    w->instances = create_growing(w, "/instances", w->instance_file_type, 1, NULL, ROW_CHUNK,
                                  DATASET_COMPRESSION_NONE);
    w->attribute_ids = create_growing(w, "/attribute_ids", H5T_STD_I32LE, 1, NULL, ROW_CHUNK,
                                      DATASET_COMPRESSION_NONE);
  }
  return w;
}

/* Grows `dataset` to first + rows rows and writes rows first.. from `data`. */
static void append_rows(dataset_writer *w, hid_t dataset, const char *name, hid_t memory_type,
                        int64_t first, int64_t rows, const void *data) {
  hid_t space = H5_ID(H5Dget_space(dataset), "%s: %s", w->temp_path, name);
  int rank = H5Sget_simple_extent_ndims(space);
  hsize_t dims[4], start[4] = {(hsize_t)first}, count[4] = {(hsize_t)rows};
  H5_OK(H5Sget_simple_extent_dims(space, dims, NULL), "%s: %s", w->temp_path, name);
  H5Sclose(space);
  dims[0] = (hsize_t)(first + rows);
  for (int d = 1; d < rank; d++) count[d] = dims[d];
  H5_OK(H5Dset_extent(dataset, dims), "%s: %s", w->temp_path, name);
  space = H5_ID(H5Dget_space(dataset), "%s: %s", w->temp_path, name);
  H5_OK(H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL), "%s: %s",
        w->temp_path, name);
  hid_t memory = H5_ID(H5Screate_simple(rank, count, NULL), "%s: %s", w->temp_path, name);
  H5_OK(H5Dwrite(dataset, memory_type, memory, space, H5P_DEFAULT, data), "%s: %s row %lld",
        w->temp_path, name, (long long)first);
  H5Sclose(memory);
  H5Sclose(space);
}

static void append_garments(dataset_writer *w, const dataset_item *item) {
  uint8_t photo_source = (uint8_t)item->photo_source;
  FP_CHECK(item->photo_source == 0 || item->photo_source == 1,
           "%s: item %s has photo source %d (0 shop, 1 user)", w->temp_path, item->id,
           item->photo_source);
  append_rows(w, w->pair_ids, "/pair_id", H5T_NATIVE_INT32, w->count, 1, &item->pair_id);
  append_rows(w, w->photo_sources, "/source", H5T_NATIVE_UINT8, w->count, 1, &photo_source);
  if (item->garment_count == 0) return;
  item_row *rows = fp_calloc((size_t)item->garment_count, sizeof *rows);
  for (int g = 0; g < item->garment_count; g++) {
    rows[g].image = w->count;
    rows[g].garment = item->garments[g];
  }
  append_rows(w, w->items, "/items", w->item_memory_type, w->item_count, item->garment_count, rows);
  w->item_count += item->garment_count;
  free(rows);
}

static void append_instances(dataset_writer *w, const dataset_item *item) {
  FP_CHECK(item->instance_count >= 0, "%s: item %s has %d instances", w->temp_path, item->id,
           item->instance_count);
  if (item->instance_count == 0) return;
  instance_row *rows = fp_calloc((size_t)item->instance_count, sizeof *rows);
  int64_t attribute_ids = 0;
  for (int i = 0; i < item->instance_count; i++) {
    const dataset_instance *in = &item->instances[i];
    FP_CHECK(in->attribute_count >= 0, "%s: item %s, instance %d has %d attribute ids",
             w->temp_path, item->id, i, in->attribute_count);
    rows[i] = (instance_row){w->count, in->category_id, in->attribute_count,
                             w->attribute_id_count + attribute_ids};
    attribute_ids += in->attribute_count;
  }
  append_rows(w, w->instances, "/instances", w->instance_memory_type, w->instance_count,
              item->instance_count, rows);
  if (attribute_ids)
    append_rows(w, w->attribute_ids, "/attribute_ids", H5T_NATIVE_INT32, w->attribute_id_count,
                attribute_ids, item->attribute_ids);
  w->instance_count += item->instance_count;
  w->attribute_id_count += attribute_ids;
  free(rows);
}

void dataset_append(dataset_writer *w, const dataset_item *item) {
  FP_CHECK(strlen(item->id) < DATASET_ID_LENGTH, "%s: id '%s' longer than %d characters",
           w->temp_path, item->id, DATASET_ID_LENGTH - 1);
  for (const char *c = item->id; *c; c++)
    FP_CHECK((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f,
             "%s: id '%s' has a byte 0x%02x that is not printable ASCII (the dataset's ids are "
             "ASCII: rename the photo)",
             w->temp_path, item->id, (unsigned char)*c);
  FP_CHECK(!w->info.has_masks || item->mask, "%s: item %s has no mask", w->temp_path, item->id);
  char id[DATASET_ID_LENGTH] = {0};
  snprintf(id, sizeof id, "%s", item->id);
  hid_t id_type = h5_fixed_string_type(DATASET_ID_LENGTH);
  int32_t source_size[2] = {item->source_height, item->source_width};
  float box[5] = {item->box.scale, (float)item->box.offset_y, (float)item->box.offset_x,
                  (float)item->box.resized_h, (float)item->box.resized_w};
  append_rows(w, w->images, "/images", H5T_NATIVE_UINT8, w->count, 1, item->image);
  if (w->info.has_masks)
    append_rows(w, w->masks, "/masks", H5T_NATIVE_UINT8, w->count, 1, item->mask);
  append_rows(w, w->tags, "/tags", H5T_NATIVE_UINT8, w->count, 1, item->tags);
  append_rows(w, w->ids, "/ids", id_type, w->count, 1, id);
  append_rows(w, w->source_size, "/source_size", H5T_NATIVE_INT32, w->count, 1, source_size);
  append_rows(w, w->letterbox_table, "/letterbox", H5T_NATIVE_FLOAT, w->count, 1, box);
  H5Tclose(id_type);
  if (w->info.has_garments) append_garments(w, item);
  if (w->info.has_instances) append_instances(w, item);
  if (w->count == w->capacity) {
    w->capacity = w->capacity ? 2 * w->capacity : 256;
    w->all_tags = realloc(w->all_tags, (size_t)w->capacity * (size_t)w->info.num_classes);
    FP_CHECK(w->all_tags, "out of memory");
  }
  memcpy(w->all_tags + w->count * w->info.num_classes, item->tags, (size_t)w->info.num_classes);
  w->count++;
}

void dataset_add_skipped(dataset_writer *w, const char *id, const char *reason) {
  int64_t n = w->skipped_count + 1;
  w->skipped_ids = realloc(w->skipped_ids, (size_t)n * sizeof *w->skipped_ids);
  w->skipped_reasons = realloc(w->skipped_reasons, (size_t)n * sizeof *w->skipped_reasons);
  FP_CHECK(w->skipped_ids && w->skipped_reasons, "out of memory");
  memset(w->skipped_ids[n - 1], 0, DATASET_ID_LENGTH);
  memset(w->skipped_reasons[n - 1], 0, DATASET_REASON_LENGTH);
  snprintf(w->skipped_ids[n - 1], DATASET_ID_LENGTH, "%s", id);
  snprintf(w->skipped_reasons[n - 1], DATASET_REASON_LENGTH, "%s", reason);
  w->skipped_count = n;
}

int64_t dataset_written(const dataset_writer *w) {
  return w->count;
}

static void write_whole(dataset_writer *w, const char *name, hid_t file_type, hid_t memory_type,
                        hsize_t rows, const void *data) {
  hid_t space = H5_ID(H5Screate_simple(1, &rows, NULL), "%s: %s", w->temp_path, name);
  hid_t dcpl = H5_ID(H5Pcreate(H5P_DATASET_CREATE), "%s: %s", w->temp_path, name);
  H5_OK(H5Pset_obj_track_times(dcpl, 0), "%s: %s", w->temp_path, name);
  hid_t dataset = H5_ID(H5Dcreate2(w->file, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                        "%s: %s", w->temp_path, name);
  if (rows > 0)
    H5_OK(H5Dwrite(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "%s: %s",
          w->temp_path, name);
  H5Dclose(dataset);
  H5Pclose(dcpl);
  H5Sclose(space);
}

/* /skipped: compound {id, reason} of fixed-length strings, one row per item. */
static void write_skipped(dataset_writer *w) {
  typedef struct skipped_row {
    char id[DATASET_ID_LENGTH];
    char reason[DATASET_REASON_LENGTH];
  } skipped_row;
  hid_t id_type = h5_fixed_string_type(DATASET_ID_LENGTH);
  hid_t reason_type = h5_fixed_string_type(DATASET_REASON_LENGTH);
  hid_t row_type =
      H5_ID(H5Tcreate(H5T_COMPOUND, sizeof(skipped_row)), "%s: /skipped", w->temp_path);
  H5_OK(H5Tinsert(row_type, "id", offsetof(skipped_row, id), id_type), "/skipped");
  H5_OK(H5Tinsert(row_type, "reason", offsetof(skipped_row, reason), reason_type), "/skipped");
  skipped_row *rows = fp_calloc((size_t)w->skipped_count, sizeof *rows);
  for (int64_t i = 0; i < w->skipped_count; i++) {
    memcpy(rows[i].id, w->skipped_ids[i], DATASET_ID_LENGTH);
    memcpy(rows[i].reason, w->skipped_reasons[i], DATASET_REASON_LENGTH);
  }
  write_whole(w, "/skipped", row_type, row_type, (hsize_t)w->skipped_count, rows);
  free(rows);
  H5Tclose(row_type);
  H5Tclose(reason_type);
  H5Tclose(id_type);
}

static void write_scalar_attribute(dataset_writer *w, const char *name, hid_t file_type,
                                   hid_t memory_type, const void *value) {
  hid_t space = H5_ID(H5Screate(H5S_SCALAR), "%s: attribute %s", w->temp_path, name);
  hid_t attribute = H5_ID(H5Acreate2(w->file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT),
                          "%s: attribute %s", w->temp_path, name);
  H5_OK(H5Awrite(attribute, memory_type, value), "%s: attribute %s", w->temp_path, name);
  H5Aclose(attribute);
  H5Sclose(space);
}

static hid_t utf8_string_type(void) {
  hid_t type = H5_ID(H5Tcopy(H5T_C_S1), "string type");
  H5_OK(H5Tset_size(type, H5T_VARIABLE), "string type");
  H5_OK(H5Tset_cset(type, H5T_CSET_UTF8), "string type");
  return type;
}

static void write_string_attribute(dataset_writer *w, const char *name, const char *value) {
  hid_t type = utf8_string_type();
  write_scalar_attribute(w, name, type, type, &value);
  H5Tclose(type);
}

static void write_attributes(dataset_writer *w, const dataset_split_options *split) {
  const dataset_info *info = &w->info;
  hid_t type = utf8_string_type();
  hsize_t k = (hsize_t)info->num_classes;
  hid_t space = H5_ID(H5Screate_simple(1, &k, NULL), "%s: attribute class_names", w->temp_path);
  hid_t names = H5_ID(H5Acreate2(w->file, "class_names", type, space, H5P_DEFAULT, H5P_DEFAULT),
                      "%s: attribute class_names", w->temp_path);
  H5_OK(H5Awrite(names, type, info->class_names), "%s: attribute class_names", w->temp_path);
  H5Aclose(names);
  H5Sclose(space);
  H5Tclose(type);
  write_string_attribute(w, "label_map", info->label_map);
  write_string_attribute(w, "source", info->source);
  write_string_attribute(w, "tool_version", info->tool_version);
  int32_t ints[4] = {info->height, info->width, info->num_classes, DATASET_SCHEMA_VERSION};
  const char *int_names[4] = {"height", "width", "num_classes", "schema_version"};
  for (int i = 0; i < 4; i++)
    write_scalar_attribute(w, int_names[i], H5T_STD_I32LE, H5T_NATIVE_INT32, &ints[i]);
  write_scalar_attribute(w, "split_seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &split->seed);
  write_scalar_attribute(w, "val_fraction", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                         &split->val_fraction);
  write_scalar_attribute(w, "test_fraction", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                         &split->test_fraction);
}

void dataset_finish(dataset_writer *w, const dataset_split_options *split,
                    int64_t split_counts[3]) {
  uint8_t *splits = fp_malloc((size_t)w->count);
  split_assign(w->all_tags, w->count, w->info.num_classes, split->val_fraction,
               split->test_fraction, split->seed, splits);
  write_whole(w, "/split", H5T_STD_U8LE, H5T_NATIVE_UINT8, (hsize_t)w->count, splits);
  if (split_counts) {
    split_counts[0] = split_counts[1] = split_counts[2] = 0;
    for (int64_t i = 0; i < w->count; i++) split_counts[splits[i]]++;
  }
  free(splits);
  write_skipped(w);
  write_attributes(w, split);
  hid_t tables[] = {w->images,        w->masks,           w->tags,         w->ids,
                    w->source_size,   w->letterbox_table, w->items,        w->pair_ids,
                    w->photo_sources, w->instances,       w->attribute_ids};
  for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
    if (tables[t] > 0) H5_OK(H5Dclose(tables[t]), "%s: close", w->temp_path);
  if (w->info.has_garments) {
    H5_OK(H5Tclose(w->item_file_type), "%s: /items type", w->temp_path);
    H5_OK(H5Tclose(w->item_memory_type), "%s: /items type", w->temp_path);
  }
  if (w->info.has_instances) {
    H5_OK(H5Tclose(w->instance_file_type), "%s: /instances type", w->temp_path);
    H5_OK(H5Tclose(w->instance_memory_type), "%s: /instances type", w->temp_path);
  }
  H5_OK(H5Fclose(w->file), "%s: close", w->temp_path);
  free(w->all_tags);
  free(w->skipped_ids);
  free(w->skipped_reasons);
  free(w);
}

void dataset_commit(dataset_writer *w, const dataset_split_options *split,
                    int64_t split_counts[3]) {
  dataset_finish(w, split, split_counts);
  dataset_publish();
}
