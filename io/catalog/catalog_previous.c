#include "catalog_previous.h"

#include <hdf5.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog_idmap.h"
#include "catalog_master.h"
#include "check.h"
#include "h5check.h"
#include "h5zstd.h"

struct catalog_previous {
  char directory[PATH_MAX], master_path[PATH_MAX];
  catalog_layout layout;
  uint64_t result_fingerprint;
  int64_t rows, failures;
  char (*ids)[CATALOG_ID_LENGTH];
  uint64_t *content_hash;
  char (*product_type)[PRIOR_TYPE_LENGTH];
  catalog_failure *failed;
  id_map *entries; /* id -> row, or rows + failure index */
  catalog_shard_entry *shards;
  int shard_count;
  catalog_shard_reader **readers; /* opened on first use */
  catalog_rows scratch;
};

static hid_t open_dataset(const catalog_previous *p, hid_t file, const char *name, int64_t *rows) {
  hid_t dataset = H5_ID(H5Dopen2(file, name, H5P_DEFAULT), "%s: %s", p->master_path, name);
  hid_t space = H5_ID(H5Dget_space(dataset), "%s: %s", p->master_path, name);
  hsize_t dims[3];
  FP_CHECK(H5Sget_simple_extent_ndims(space) >= 1, "%s: %s is a scalar", p->master_path, name);
  H5_OK(H5Sget_simple_extent_dims(space, dims, NULL), "%s: %s", p->master_path, name);
  H5Sclose(space);
  *rows = (int64_t)dims[0];
  return dataset;
}

static void read_whole(const catalog_previous *p, hid_t file, const char *name, hid_t type,
                       int64_t expected_rows, void *out) {
  int64_t rows;
  hid_t dataset = open_dataset(p, file, name, &rows);
  FP_CHECK(rows == expected_rows, "%s: %s has %lld rows, expected %lld", p->master_path, name,
           (long long)rows, (long long)expected_rows);
  if (rows > 0)
    H5_OK(H5Dread(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out), "%s: %s", p->master_path,
          name);
  H5Dclose(dataset);
}

static int64_t int_attribute(const catalog_previous *p, hid_t file, const char *name) {
  htri_t exists = H5_OK(H5Aexists(file, name), "%s: attribute %s", p->master_path, name);
  FP_CHECK(exists > 0, "%s: not a parse_catalog master file (no attribute %s)", p->master_path,
           name);
  hid_t attribute = H5_ID(H5Aopen(file, name, H5P_DEFAULT), "%s: %s", p->master_path, name);
  int64_t value;
  H5_OK(H5Aread(attribute, H5T_NATIVE_INT64, &value), "%s: %s", p->master_path, name);
  H5Aclose(attribute);
  return value;
}

static void read_tables(catalog_previous *p, hid_t file) {
  int64_t values[7];
  const char *names[7] = {"height",        "width",        "num_classes", "source_masks",
                          "source_height", "source_width", "zstd_level"};
  for (int i = 0; i < 7; i++) values[i] = int_attribute(p, file, names[i]);
  p->layout = (catalog_layout){(int)values[0], (int)values[1], (int)values[2], (int)values[3],
                               (int)values[4], (int)values[5], (int)values[6]};
  hid_t fingerprint = H5_ID(H5Aopen(file, "result_fingerprint", H5P_DEFAULT),
                            "%s: attribute result_fingerprint", p->master_path);
  H5_OK(H5Aread(fingerprint, H5T_NATIVE_UINT64, &p->result_fingerprint),
        "%s: attribute result_fingerprint", p->master_path);
  H5Aclose(fingerprint);
  H5Dclose(open_dataset(p, file, "/ids", &p->rows));
  H5Dclose(open_dataset(p, file, "/failed", &p->failures));
  size_t rows = (size_t)(p->rows ? p->rows : 1), failures = (size_t)(p->failures ? p->failures : 1);
  p->ids = fp_calloc(rows, sizeof *p->ids);
  p->content_hash = fp_calloc(rows, sizeof *p->content_hash);
  p->product_type = fp_calloc(rows, sizeof *p->product_type);
  p->failed = fp_calloc(failures, sizeof *p->failed);
  hid_t id_type = h5_fixed_string_type(CATALOG_ID_LENGTH),
        type_type = h5_fixed_string_type(PRIOR_TYPE_LENGTH);
  hid_t failure_type = catalog_failure_type();
  read_whole(p, file, "/ids", id_type, p->rows, p->ids);
  read_whole(p, file, "/content_hash", H5T_NATIVE_UINT64, p->rows, p->content_hash);
  read_whole(p, file, "/product_type", type_type, p->rows, p->product_type);
  read_whole(p, file, "/failed", failure_type, p->failures, p->failed);
  H5Tclose(failure_type);
  H5Tclose(type_type);
  H5Tclose(id_type);
  int64_t shard_count;
  H5Dclose(open_dataset(p, file, "/shard_table", &shard_count));
  p->shard_count = (int)shard_count;
  p->shards = fp_calloc((size_t)(shard_count ? shard_count : 1), sizeof *p->shards);
  hid_t shard_type = catalog_shard_entry_type();
  read_whole(p, file, "/shard_table", shard_type, shard_count, p->shards);
  H5Tclose(shard_type);
}

catalog_previous *catalog_previous_open(const char *run_directory) {
  h5zstd_register();
  catalog_previous *p = fp_calloc(1, sizeof *p);
  snprintf(p->directory, sizeof p->directory, "%s", run_directory);
  int n = snprintf(p->master_path, sizeof p->master_path, "%s/master.h5", run_directory);
  FP_CHECK(n > 0 && (size_t)n < sizeof p->master_path, "%s: path too long", run_directory);
  FP_CHECK(H5Fis_hdf5(p->master_path) > 0,
           "%s: no readable master file of a previous run (nightly.previous = %s)", p->master_path,
           run_directory);
  hid_t file =
      H5_ID(H5Fopen(p->master_path, H5F_ACC_RDONLY, H5P_DEFAULT), "%s: open", p->master_path);
  read_tables(p, file);
  H5_OK(H5Fclose(file), "%s: close", p->master_path);
  p->entries = id_map_create(p->rows + p->failures, ID_MAP_BORROWS);
  for (int64_t i = 0; i < p->rows; i++)
    FP_CHECK(id_map_put(p->entries, p->ids[i], i) < 0, "%s: id '%s' appears twice", p->master_path,
             p->ids[i]);
  for (int64_t i = 0; i < p->failures; i++)
    FP_CHECK(id_map_put(p->entries, p->failed[i].id, p->rows + i) < 0, "%s: id '%s' appears twice",
             p->master_path, p->failed[i].id);
  p->readers = fp_calloc((size_t)(p->shard_count ? p->shard_count : 1), sizeof *p->readers);
  catalog_rows_init(&p->scratch, &p->layout, 1);
  return p;
}

void catalog_previous_close(catalog_previous *p) {
  if (!p) return;
  for (int s = 0; s < p->shard_count; s++) catalog_shard_close(p->readers[s]);
  catalog_rows_free(&p->scratch);
  id_map_free(p->entries);
  free(p->readers);
  free(p->shards);
  free(p->ids);
  free(p->content_hash);
  free(p->product_type);
  free(p->failed);
  free(p);
}

uint64_t catalog_previous_result_fingerprint(const catalog_previous *p) {
  return p->result_fingerprint;
}

const catalog_layout *catalog_previous_layout(const catalog_previous *p) {
  return &p->layout;
}

previous_entry catalog_previous_find(const catalog_previous *p, const char *id) {
  int64_t value = id_map_get(p->entries, id);
  if (value < 0) return (previous_entry){PREVIOUS_ABSENT, -1, 0, ""};
  if (value < p->rows)
    return (previous_entry){PREVIOUS_ROW, value, p->content_hash[value], p->product_type[value]};
  int64_t failure = value - p->rows;
  return (previous_entry){PREVIOUS_FAILURE, failure, p->failed[failure].content_hash, ""};
}

void catalog_previous_read_row(catalog_previous *p, int64_t row, catalog_rows *out,
                               int64_t out_row) {
  FP_CHECK(row >= 0 && row < p->rows, "%s: row %lld of %lld", p->master_path, (long long)row,
           (long long)p->rows);
  int s = 0;
  while (s < p->shard_count && row >= p->shards[s].first_row + p->shards[s].rows) s++;
  FP_CHECK(s < p->shard_count && row >= p->shards[s].first_row,
           "%s: /shard_table does not cover row %lld", p->master_path, (long long)row);
  if (!p->readers[s]) {
    char path[PATH_MAX + CATALOG_SHARD_NAME_LENGTH];
    snprintf(path, sizeof path, "%s/%s", p->directory, p->shards[s].file);
    p->readers[s] = catalog_shard_open(path);
  }
  catalog_shard_read_rows(p->readers[s], row - p->shards[s].first_row, 1, &p->scratch);
  catalog_rows_copy(out, out_row, &p->scratch, 0);
}

int64_t catalog_previous_removed(const catalog_previous *p, const catalog *current) {
  /* the previous run's ids are unique (catalog_previous_open checks), and so are the catalog's */
  int64_t kept = 0;
  for (int64_t i = 0; i < catalog_count(current); i++)
    kept += id_map_get(p->entries, catalog_id(current, i)) >= 0;
  return p->rows + p->failures - kept;
}
