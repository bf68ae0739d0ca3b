#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dataset.h"
#include "h5check.h"
#include "h5zstd.h"
#include "hdf5_lock.h"

struct fp_dataset {
  char *path;
  hid_t file, images, masks, tags;
  int64_t count;
  int height, width, num_classes;
  char **class_names;
  uint8_t *split;
};

static hid_t open_dataset(const fp_dataset *ds, const char *name) {
  htri_t exists = H5_OK(H5Lexists(ds->file, name, H5P_DEFAULT), "%s: %s", ds->path, name);
  if (!exists) FP_FATAL("%s: missing dataset %s", ds->path, name);
  return H5_ID(H5Dopen2(ds->file, name, H5P_DEFAULT), "%s: %s", ds->path, name);
}

/* Checks that `dataset` is [dims...] of unsigned 8-bit integers; 0 in
 * `expected` matches any length. Returns the first dimension. */
static int64_t check_uint8_shape(const fp_dataset *ds, hid_t dataset, const char *name, int rank,
                                 const int64_t *expected) {
  hid_t type = H5_ID(H5Dget_type(dataset), "%s: %s", ds->path, name);
  int is_uint8 = H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 1 &&
                 H5Tget_sign(type) == H5T_SGN_NONE;
  H5Tclose(type);
  FP_CHECK(is_uint8, "%s: dataset %s must hold uint8", ds->path, name);
  hid_t space = H5_ID(H5Dget_space(dataset), "%s: %s", ds->path, name);
  hsize_t dims[8];
  int actual_rank = H5Sget_simple_extent_ndims(space);
  FP_CHECK(actual_rank == rank, "%s: dataset %s has rank %d, expected %d", ds->path, name,
           actual_rank, rank);
  H5_OK(H5Sget_simple_extent_dims(space, dims, NULL), "%s: %s", ds->path, name);
  H5Sclose(space);
  for (int d = 0; d < rank; d++)
    FP_CHECK(!expected[d] || (int64_t)dims[d] == expected[d],
             "%s: dataset %s has %lld in dimension %d, expected %lld", ds->path, name,
             (long long)dims[d], d, (long long)expected[d]);
  return (int64_t)dims[0];
}

/* Checks a dataset's rank and shape, any type class in `type_class`. */
static void check_table(const fp_dataset *ds, const char *name, H5T_class_t type_class, int rank,
                        const int64_t *expected) {
  hid_t dataset = open_dataset(ds, name);
  hid_t type = H5_ID(H5Dget_type(dataset), "%s: %s", ds->path, name);
  FP_CHECK(H5Tget_class(type) == type_class, "%s: dataset %s has the wrong type class", ds->path,
           name);
  H5Tclose(type);
  hid_t space = H5_ID(H5Dget_space(dataset), "%s: %s", ds->path, name);
  hsize_t dims[8];
  FP_CHECK(H5Sget_simple_extent_ndims(space) == rank, "%s: dataset %s must have rank %d", ds->path,
           name, rank);
  H5_OK(H5Sget_simple_extent_dims(space, dims, NULL), "%s: %s", ds->path, name);
  for (int d = 0; d < rank; d++)
    FP_CHECK((int64_t)dims[d] == expected[d],
             "%s: dataset %s has %lld in dimension %d, expected %lld", ds->path, name,
             (long long)dims[d], d, (long long)expected[d]);
  H5Sclose(space);
  H5Dclose(dataset);
}

static hid_t open_attribute(const fp_dataset *ds, const char *name) {
  htri_t exists = H5_OK(H5Aexists(ds->file, name), "%s: attribute %s", ds->path, name);
  if (!exists) FP_FATAL("%s: missing root attribute %s", ds->path, name);
  return H5_ID(H5Aopen(ds->file, name, H5P_DEFAULT), "%s: attribute %s", ds->path, name);
}

static int read_int_attribute(const fp_dataset *ds, const char *name) {
  hid_t attribute = open_attribute(ds, name);
  hid_t type = H5_ID(H5Aget_type(attribute), "%s: attribute %s", ds->path, name);
  FP_CHECK(H5Tget_class(type) == H5T_INTEGER, "%s: attribute %s must be an integer", ds->path,
           name);
  H5Tclose(type);
  int value;
  H5_OK(H5Aread(attribute, H5T_NATIVE_INT, &value), "%s: attribute %s", ds->path, name);
  H5Aclose(attribute);
  return value;
}

/* class_names: an array of strings, variable- or fixed-length. */
static void read_class_names(fp_dataset *ds) {
  hid_t attribute = open_attribute(ds, "class_names");
  hid_t type = H5_ID(H5Aget_type(attribute), "%s: attribute class_names", ds->path);
  hid_t space = H5_ID(H5Aget_space(attribute), "%s: attribute class_names", ds->path);
  FP_CHECK(H5Tget_class(type) == H5T_STRING, "%s: attribute class_names must hold strings",
           ds->path);
  hssize_t count = H5Sget_simple_extent_npoints(space);
  FP_CHECK(count == ds->num_classes,
           "%s: attribute class_names has %lld names but attribute num_classes is %d", ds->path,
           (long long)count, ds->num_classes);
  ds->class_names = fp_calloc((size_t)count, sizeof *ds->class_names);
  hid_t memory_type = H5_ID(H5Tcopy(H5T_C_S1), "string type");
  H5_OK(H5Tset_cset(memory_type, H5Tget_cset(type)), "string type");
  if (H5Tis_variable_str(type) > 0) {
    H5_OK(H5Tset_size(memory_type, H5T_VARIABLE), "string type");
    char **names = fp_calloc((size_t)count, sizeof *names);
    H5_OK(H5Aread(attribute, memory_type, names), "%s: attribute class_names", ds->path);
    for (hssize_t k = 0; k < count; k++) ds->class_names[k] = strdup(names[k] ? names[k] : "");
    H5_OK(H5Dvlen_reclaim(memory_type, space, H5P_DEFAULT, names), "%s: class_names", ds->path);
    free(names);
  } else {
    size_t length = H5Tget_size(type) + 1;
    H5_OK(H5Tset_size(memory_type, length), "string type");
    char *names = fp_calloc((size_t)count, length);
    H5_OK(H5Aread(attribute, memory_type, names), "%s: attribute class_names", ds->path);
    for (hssize_t k = 0; k < count; k++) ds->class_names[k] = strdup(names + k * length);
    free(names);
  }
  for (hssize_t k = 0; k < count; k++) FP_CHECK(ds->class_names[k], "out of memory");
  H5Tclose(memory_type);
  H5Sclose(space);
  H5Tclose(type);
  H5Aclose(attribute);
}

static void read_split(fp_dataset *ds) {
  hid_t dataset = open_dataset(ds, "/split");
  int64_t n[1] = {ds->count};
  check_uint8_shape(ds, dataset, "/split", 1, n);
  ds->split = fp_malloc((size_t)ds->count);
  if (ds->count > 0)
    H5_OK(H5Dread(dataset, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, ds->split),
          "%s: /split", ds->path);
  H5Dclose(dataset);
  for (int64_t i = 0; i < ds->count; i++)
    FP_CHECK(ds->split[i] <= 2, "%s: /split[%lld] is %d (0 train, 1 val, 2 test)", ds->path,
             (long long)i, ds->split[i]);
}

static void open_locked(fp_dataset *ds) {
  htri_t is_hdf5 = H5Fis_hdf5(ds->path);
  FP_CHECK(is_hdf5 > 0, "%s: %s", ds->path, is_hdf5 == 0 ? "not an HDF5 file" : "cannot open");
  ds->file = H5_ID(H5Fopen(ds->path, H5F_ACC_RDONLY, H5P_DEFAULT), "%s: open", ds->path);
  ds->height = read_int_attribute(ds, "height");
  ds->width = read_int_attribute(ds, "width");
  ds->num_classes = read_int_attribute(ds, "num_classes");
  FP_CHECK(ds->height > 0 && ds->width > 0 && ds->num_classes > 0 && ds->num_classes < 255,
           "%s: attributes height %d, width %d, num_classes %d out of range", ds->path, ds->height,
           ds->width, ds->num_classes);
  read_class_names(ds);
  ds->images = open_dataset(ds, "/images");
  int64_t image_shape[4] = {0, ds->height, ds->width, 3};
  ds->count = check_uint8_shape(ds, ds->images, "/images", 4, image_shape);
  htri_t has_masks = H5_OK(H5Lexists(ds->file, "/masks", H5P_DEFAULT), "%s: /masks", ds->path);
  if (has_masks) {
    ds->masks = open_dataset(ds, "/masks");
    int64_t mask_shape[3] = {ds->count, ds->height, ds->width};
    check_uint8_shape(ds, ds->masks, "/masks", 3, mask_shape);
  }
  ds->tags = open_dataset(ds, "/tags");
  int64_t tag_shape[2] = {ds->count, 0};
  check_uint8_shape(ds, ds->tags, "/tags", 2, tag_shape);
  hid_t tag_space = H5_ID(H5Dget_space(ds->tags), "%s: /tags", ds->path);
  hsize_t tag_dims[2];
  H5_OK(H5Sget_simple_extent_dims(tag_space, tag_dims, NULL), "%s: /tags", ds->path);
  H5Sclose(tag_space);
  FP_CHECK((int)tag_dims[1] == ds->num_classes,
           "%s: /tags has %d classes but attribute num_classes is %d", ds->path, (int)tag_dims[1],
           ds->num_classes);
  read_split(ds);
  int64_t ids_shape[1] = {ds->count}, size_shape[2] = {ds->count, 2}, box_shape[2] = {ds->count, 5};
  check_table(ds, "/ids", H5T_STRING, 1, ids_shape);
  check_table(ds, "/source_size", H5T_INTEGER, 2, size_shape);
  check_table(ds, "/letterbox", H5T_FLOAT, 2, box_shape);
}

fp_dataset *dataset_open(const char *path) {
  h5zstd_register();
  fp_dataset *ds = fp_calloc(1, sizeof *ds);
  ds->path = strdup(path);
  FP_CHECK(ds->path, "out of memory");
  hdf5_lock();
  open_locked(ds);
  hdf5_unlock();
  return ds;
}

void dataset_close(fp_dataset *ds) {
  if (!ds) return;
  hdf5_lock();
  hid_t handles[] = {ds->images, ds->masks, ds->tags};
  for (size_t h = 0; h < sizeof handles / sizeof handles[0]; h++)
    if (handles[h] > 0) H5_OK(H5Dclose(handles[h]), "%s: close", ds->path);
  H5_OK(H5Fclose(ds->file), "%s: close", ds->path);
  hdf5_unlock();
  for (int k = 0; k < ds->num_classes; k++) free(ds->class_names[k]);
  free(ds->class_names);
  free(ds->split);
  free(ds->path);
  free(ds);
}

int64_t dataset_count(const fp_dataset *ds) {
  return ds->count;
}
int dataset_height(const fp_dataset *ds) {
  return ds->height;
}
int dataset_width(const fp_dataset *ds) {
  return ds->width;
}
int dataset_num_classes(const fp_dataset *ds) {
  return ds->num_classes;
}
int dataset_has_masks(const fp_dataset *ds) {
  return ds->masks > 0;
}
const char *dataset_path(const fp_dataset *ds) {
  return ds->path;
}

const char *dataset_class_name(const fp_dataset *ds, int k) {
  FP_CHECK(k >= 0 && k < ds->num_classes, "%s: class %d of %d", ds->path, k, ds->num_classes);
  return ds->class_names[k];
}

int dataset_split_of(const fp_dataset *ds, int64_t i) {
  FP_CHECK(i >= 0 && i < ds->count, "%s: image %lld of %lld", ds->path, (long long)i,
           (long long)ds->count);
  return ds->split[i];
}

/* Reads row i of `dataset` (rank 2..4, row of `row_dims`) into `out`. */
static void read_row(fp_dataset *ds, hid_t dataset, const char *name, int64_t i, int rank,
                     const hsize_t *row_dims, uint8_t *out) {
  FP_CHECK(i >= 0 && i < ds->count, "%s: %s row %lld of %lld", ds->path, name, (long long)i,
           (long long)ds->count);
  hsize_t start[4] = {(hsize_t)i}, count[4] = {1};
  for (int d = 1; d < rank; d++) count[d] = row_dims[d - 1];
  hdf5_lock();
  hid_t space = H5_ID(H5Dget_space(dataset), "%s: %s", ds->path, name);
  H5_OK(H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL), "%s: %s", ds->path,
        name);
  hid_t memory = H5_ID(H5Screate_simple(rank, count, NULL), "%s: %s", ds->path, name);
  H5_OK(H5Dread(dataset, H5T_NATIVE_UINT8, memory, space, H5P_DEFAULT, out), "%s: %s row %lld",
        ds->path, name, (long long)i);
  H5Sclose(memory);
  H5Sclose(space);
  hdf5_unlock();
}

void dataset_read_image(fp_dataset *ds, int64_t i, uint8_t *hwc) {
  hsize_t row[3] = {(hsize_t)ds->height, (hsize_t)ds->width, 3};
  read_row(ds, ds->images, "/images", i, 4, row, hwc);
}

void dataset_read_mask(fp_dataset *ds, int64_t i, uint8_t *hw) {
  FP_CHECK(ds->masks > 0, "%s: no /masks (a tag-only dataset)", ds->path);
  hsize_t row[2] = {(hsize_t)ds->height, (hsize_t)ds->width};
  read_row(ds, ds->masks, "/masks", i, 3, row, hw);
  /* a label no class has would index past the class weights and the logits downstream */
  size_t plane = (size_t)ds->height * ds->width;
  for (size_t p = 0; p < plane; p++)
    if (hw[p] >= ds->num_classes && hw[p] != DATASET_IGNORE_LABEL)
      FP_FATAL("%s: /masks row %lld: label %d at pixel (row %zu, column %zu) is none of the "
               "dataset's %d classes (0..%d) nor the ignore label %d",
               ds->path, (long long)i, hw[p], p / (size_t)ds->width, p % (size_t)ds->width,
               ds->num_classes, ds->num_classes - 1, DATASET_IGNORE_LABEL);
}

void dataset_read_tags(fp_dataset *ds, int64_t i, uint8_t *tags) {
  hsize_t row[1] = {(hsize_t)ds->num_classes};
  read_row(ds, ds->tags, "/tags", i, 2, row, tags);
}
