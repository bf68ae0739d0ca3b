#include "catalog_master.h"

#include <hdf5.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog_files.h"
#include "check.h"
#include "colour.h"
#include "h5check.h"
#include "h5zstd.h"

#define TOOL_VERSION "fashion_parse parse_catalog 1.0"

typedef struct master {
  const char *path, *temporary;
  char directory[PATH_MAX];
  hid_t file;
} master;

static hid_t utf8_string(void) {
  hid_t type = H5_ID(H5Tcopy(H5T_C_S1), "string type");
  H5_OK(H5Tset_size(type, H5T_VARIABLE), "string type");
  H5_OK(H5Tset_cset(type, H5T_CSET_UTF8), "string type");
  return type;
}

static void scalar_attribute(const master *m, const char *name, hid_t file_type, hid_t memory_type,
                             const void *value) {
  hid_t space = H5_ID(H5Screate(H5S_SCALAR), "%s: attribute %s", m->temporary, name);
  hid_t attribute = H5_ID(H5Acreate2(m->file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT),
                          "%s: attribute %s", m->temporary, name);
  H5_OK(H5Awrite(attribute, memory_type, value), "%s: attribute %s", m->temporary, name);
  H5Aclose(attribute);
  H5Sclose(space);
}

static void string_attribute(const master *m, const char *name, const char *value) {
  hid_t type = utf8_string();
  const char *text = value ? value : "";
  scalar_attribute(m, name, type, type, &text);
  H5Tclose(type);
}

static void int_attribute(const master *m, const char *name, int64_t value) {
  scalar_attribute(m, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

static void u64_attribute(const master *m, const char *name, uint64_t value) {
  scalar_attribute(m, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value);
}

static void class_names_attribute(const master *m, char *const *names, int count) {
  hid_t type = utf8_string();
  hsize_t k = (hsize_t)count;
  hid_t space = H5_ID(H5Screate_simple(1, &k, NULL), "%s: class_names", m->temporary);
  hid_t attribute = H5_ID(H5Acreate2(m->file, "class_names", type, space, H5P_DEFAULT, H5P_DEFAULT),
                          "%s: class_names", m->temporary);
  H5_OK(H5Awrite(attribute, type, names), "%s: class_names", m->temporary);
  H5Aclose(attribute);
  H5Sclose(space);
  H5Tclose(type);
}

/* A plain dataset written whole. */
static void plain_dataset(const master *m, const char *name, hid_t file_type, hid_t memory_type,
                          int rank, const hsize_t *dims, const void *data) {
  hid_t lcpl = H5_ID(H5Pcreate(H5P_LINK_CREATE), "%s: %s", m->temporary, name);
  H5_OK(H5Pset_create_intermediate_group(lcpl, 1), "%s: %s", m->temporary, name);
  hid_t space = H5_ID(H5Screate_simple(rank, dims, NULL), "%s: %s", m->temporary, name);
  hid_t dataset = H5_ID(H5Dcreate2(m->file, name, file_type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT),
                        "%s: %s", m->temporary, name);
  if (H5Sget_simple_extent_npoints(space) > 0)
    H5_OK(H5Dwrite(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "%s: %s",
          m->temporary, name);
  H5Dclose(dataset);
  H5Sclose(space);
  H5Pclose(lcpl);
}

/* The type and shape of dataset `name` in the first shard. */
static void source_shape(const master *m, const catalog_shard_entry *shard, const char *name,
                         hid_t *type, int *rank, hsize_t *dims) {
  char path[PATH_MAX + CATALOG_SHARD_NAME_LENGTH];
  snprintf(path, sizeof path, "%s/%s", m->directory, shard->file);
  hid_t file = H5_ID(H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), "%s: open", path);
  hid_t dataset = H5_ID(H5Dopen2(file, name, H5P_DEFAULT), "%s: %s", path, name);
  *type = H5_ID(H5Dget_type(dataset), "%s: %s", path, name);
  hid_t space = H5_ID(H5Dget_space(dataset), "%s: %s", path, name);
  *rank = H5Sget_simple_extent_ndims(space);
  FP_CHECK(*rank >= 1 && *rank <= 3, "%s: %s has rank %d", path, name, *rank);
  H5_OK(H5Sget_simple_extent_dims(space, dims, NULL), "%s: %s", path, name);
  H5Sclose(space);
  H5Dclose(dataset);
  H5_OK(H5Fclose(file), "%s: close", path);
}

/* Dataset `name` of every shard, stacked: rows [first, first + count) of the
 * master come from shard s (counts and firsts picked by `failures`). */
static void virtual_dataset(const master *m, const char *name, const catalog_shard_entry *shards,
                            int shard_count, int failures) {
  hid_t type;
  int rank;
  hsize_t dims[3];
  source_shape(m, &shards[0], name, &type, &rank, dims);
  hsize_t total = 0;
  for (int s = 0; s < shard_count; s++)
    total += (hsize_t)(failures ? shards[s].failures : shards[s].rows);
  dims[0] = total;
  hid_t space = H5_ID(H5Screate_simple(rank, dims, NULL), "%s: %s", m->temporary, name);
  hid_t dcpl = H5_ID(H5Pcreate(H5P_DATASET_CREATE), "%s: %s", m->temporary, name);
  H5_OK(H5Pset_obj_track_times(dcpl, 0), "%s: %s", m->temporary, name);
  for (int s = 0; s < shard_count && total > 0; s++) {
    hsize_t count = (hsize_t)(failures ? shards[s].failures : shards[s].rows);
    hsize_t first = (hsize_t)(failures ? shards[s].first_failure : shards[s].first_row);
    if (count == 0) continue;
    hsize_t start[3] = {first, 0, 0}, block[3] = {count, dims[1], dims[2]};
    hid_t target = H5_ID(H5Scopy(space), "%s: %s", m->temporary, name);
    H5_OK(H5Sselect_hyperslab(target, H5S_SELECT_SET, start, NULL, block, NULL), "%s: %s",
          m->temporary, name);
    hid_t source = H5_ID(H5Screate_simple(rank, block, NULL), "%s: %s", m->temporary, name);
    H5_OK(H5Pset_virtual(dcpl, target, shards[s].file, name, source), "%s: %s from %s",
          m->temporary, name, shards[s].file);
    H5Sclose(source);
    H5Sclose(target);
  }
  hid_t dataset = H5_ID(H5Dcreate2(m->file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                        "%s: %s", m->temporary, name);
  H5Dclose(dataset);
  H5Pclose(dcpl);
  H5Sclose(space);
  H5Tclose(type);
}

hid_t catalog_shard_entry_type(void) {
  hid_t name_type = H5_ID(H5Tcopy(H5T_C_S1), "string type");
  H5_OK(H5Tset_size(name_type, CATALOG_SHARD_NAME_LENGTH), "string type");
  hid_t type = H5_ID(H5Tcreate(H5T_COMPOUND, sizeof(catalog_shard_entry)), "/shard_table");
  H5_OK(H5Tinsert(type, "file", offsetof(catalog_shard_entry, file), name_type), "/shard_table");
  const char *numbers[4] = {"first_row", "rows", "first_failure", "failures"};
  size_t offsets[4] = {
      offsetof(catalog_shard_entry, first_row), offsetof(catalog_shard_entry, rows),
      offsetof(catalog_shard_entry, first_failure), offsetof(catalog_shard_entry, failures)};
  for (int i = 0; i < 4; i++)
    H5_OK(H5Tinsert(type, numbers[i], offsets[i], H5T_NATIVE_INT64), "/shard_table");
  H5Tclose(name_type);
  return type;
}

static void shard_table(const master *m, const catalog_shard_entry *shards, int shard_count) {
  hid_t type = catalog_shard_entry_type();
  hsize_t n = (hsize_t)shard_count;
  plain_dataset(m, "/shard_table", type, type, 1, &n, shards);
  H5Tclose(type);
}

static void palette(const master *m) {
  char names[COLOUR_PALETTE_SIZE][COLOUR_NAME_LENGTH] = {{0}};
  float lab[COLOUR_PALETTE_SIZE][3];
  uint8_t srgb[COLOUR_PALETTE_SIZE][3];
  for (int i = 0; i < COLOUR_PALETTE_SIZE; i++) {
    snprintf(names[i], COLOUR_NAME_LENGTH, "%s", colour_palette[i].name);
    double centre[3];
    colour_palette_lab(i, centre);
    for (int c = 0; c < 3; c++) {
      lab[i][c] = (float)centre[c];
      srgb[i][c] = colour_palette[i].srgb[c];
    }
  }
  hid_t name_type = H5_ID(H5Tcopy(H5T_C_S1), "string type");
  H5_OK(H5Tset_size(name_type, COLOUR_NAME_LENGTH), "string type");
  hsize_t p = COLOUR_PALETTE_SIZE, p3[2] = {COLOUR_PALETTE_SIZE, 3};
  plain_dataset(m, "/palette/names", name_type, name_type, 1, &p, names);
  plain_dataset(m, "/palette/lab", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, p3, lab);
  plain_dataset(m, "/palette/srgb", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, p3, srgb);
  H5Tclose(name_type);
}

static void attributes(const master *m, const catalog_master_info *info) {
  const catalog_layout *l = &info->layout;
  class_names_attribute(m, info->class_names, l->classes);
  const char *strings[][2] = {
      {"tool_version", TOOL_VERSION},
      {"arch", info->arch},
      {"checkpoint", info->checkpoint},
      {"job_id", info->job_id},
      {"job_config", info->job_config},
      {"catalog", info->catalog},
      {"prior_table", info->prior_table},
      {"prior_csv", info->prior_csv},
      {"previous_run", info->previous_run},
      {"created", info->created},
      {"presence_probability", "absent: the model has no class branch"},
  };
  for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
    string_attribute(m, strings[i][0], strings[i][1]);
  const int64_t ints[][1] = {{l->height},
                             {l->width},
                             {l->classes},
                             {l->source_masks},
                             {l->source_height},
                             {l->source_width},
                             {l->zstd_level},
                             {info->counts.images},
                             {info->counts.failed},
                             {info->counts.reused},
                             {info->counts.new_images},
                             {info->counts.changed},
                             {info->counts.unchanged},
                             {info->counts.removed}};
  const char *int_names[] = {"height",        "width",        "num_classes", "source_masks",
                             "source_height", "source_width", "zstd_level",  "images",
                             "failed",        "reused",       "new",         "changed",
                             "unchanged",     "removed"};
  for (size_t i = 0; i < sizeof int_names / sizeof int_names[0]; i++)
    int_attribute(m, int_names[i], ints[i][0]);
  u64_attribute(m, "checkpoint_hash", info->checkpoint_hash);
  u64_attribute(m, "result_fingerprint", info->result_fingerprint);
}

void catalog_master_write(const char *path, const catalog_master_info *info,
                          const catalog_shard_entry *shards, int shard_count) {
  FP_CHECK(shard_count > 0, "%s: no shards", path);
  h5zstd_register();
  char temporary[PATH_MAX];
  catalog_begin_temporary(path, temporary, sizeof temporary);
  master m = {path, temporary, "", -1};
  snprintf(m.directory, sizeof m.directory, "%s", path);
  char *slash = strrchr(m.directory, '/');
  if (slash)
    *slash = '\0';
  else
    snprintf(m.directory, sizeof m.directory, ".");
  hid_t fcpl = H5_ID(H5Pcreate(H5P_FILE_CREATE), "%s", temporary);
  H5_OK(H5Pset_obj_track_times(fcpl, 0), "%s: root group", temporary);
  m.file = H5_ID(H5Fcreate(temporary, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT), "%s: create", temporary);
  H5Pclose(fcpl);
  for (int d = 0; d < catalog_row_dataset_count; d++) {
    const char *name = catalog_row_datasets[d];
    if (!strcmp(name, "/masks_source") && !info->layout.source_masks) continue;
    virtual_dataset(&m, name, shards, shard_count, 0);
  }
  virtual_dataset(&m, "/failed", shards, shard_count, 1);
  shard_table(&m, shards, shard_count);
  palette(&m);
  const int k = info->layout.classes;
  hsize_t k1 = (hsize_t)k, k3[2] = {(hsize_t)k, 3};
  plain_dataset(&m, "/class_colours", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, k3, info->class_colours);
  plain_dataset(&m, "/totals/image_count", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &k1,
                info->totals.image_count);
  plain_dataset(&m, "/totals/pixel_count", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &k1,
                info->totals.pixel_count);
  plain_dataset(&m, "/totals/fraction_sum", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &k1,
                info->totals.fraction_sum);
  attributes(&m, info);
  H5_OK(H5Fclose(m.file), "%s: close", temporary);
  catalog_commit_temporary(temporary, path);
}

static void read_rows(hid_t file, const char *path, const char *name, hid_t memory_type,
                      int64_t first, int64_t count, void *out) {
  hid_t dataset = H5_ID(H5Dopen2(file, name, H5P_DEFAULT), "%s: %s", path, name);
  hid_t space = H5_ID(H5Dget_space(dataset), "%s: %s", path, name);
  int rank = H5Sget_simple_extent_ndims(space);
  hsize_t dims[3], start[3] = {(hsize_t)first, 0, 0};
  FP_CHECK(rank >= 1 && rank <= 3, "%s: %s has rank %d", path, name, rank);
  H5_OK(H5Sget_simple_extent_dims(space, dims, NULL), "%s: %s", path, name);
  FP_CHECK(first >= 0 && (hsize_t)(first + count) <= dims[0], "%s: %s rows %lld..%lld of %llu",
           path, name, (long long)first, (long long)(first + count - 1),
           (unsigned long long)dims[0]);
  dims[0] = (hsize_t)count;
  H5_OK(H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, dims, NULL), "%s: %s", path, name);
  hid_t memory = H5_ID(H5Screate_simple(rank, dims, NULL), "%s: %s", path, name);
  H5_OK(H5Dread(dataset, memory_type, memory, space, H5P_DEFAULT, out), "%s: %s", path, name);
  H5Sclose(memory);
  H5Sclose(space);
  H5Dclose(dataset);
}

void catalog_master_read(const char *path, int64_t first, int64_t count,
                         char (*ids)[CATALOG_ID_LENGTH], int64_t *catalog_index,
                         float *pixel_fraction, uint8_t *masks) {
  h5zstd_register();
  hid_t file = H5_ID(H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), "%s: open", path);
  hid_t id_type = H5_ID(H5Tcopy(H5T_C_S1), "string type");
  H5_OK(H5Tset_size(id_type, CATALOG_ID_LENGTH), "string type");
  read_rows(file, path, "/ids", id_type, first, count, ids);
  read_rows(file, path, "/catalog_index", H5T_NATIVE_INT64, first, count, catalog_index);
  read_rows(file, path, "/pixel_fraction", H5T_NATIVE_FLOAT, first, count, pixel_fraction);
  read_rows(file, path, "/masks", H5T_NATIVE_UINT8, first, count, masks);
  H5Tclose(id_type);
  H5_OK(H5Fclose(file), "%s: close", path);
}
