#include "h5_tensors.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

hid_t h5_open_read(const char *path) {
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) FP_FATAL("cannot open HDF5 file %s", path);
  return file;
}

int h5_read_floats(hid_t loc, const char *file, const char *name, float *out, size_t count) {
  if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return -1;
  hid_t dset = H5Dopen2(loc, name, H5P_DEFAULT);
  if (dset < 0) FP_FATAL("%s: cannot open dataset %s", file, name);
  hid_t space = H5Dget_space(dset);
  hssize_t points = H5Sget_simple_extent_npoints(space);
  hid_t type = H5Dget_type(dset);
  H5T_class_t type_class = H5Tget_class(type);
  if (type_class != H5T_FLOAT) FP_FATAL("%s: dataset %s is not floating point", file, name);
  if (points < 0 || (size_t)points != count)
    FP_FATAL("%s: dataset %s has %lld elements, expected %zu", file, name, (long long)points,
             count);
  H5_CHECK(H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out));
  H5Tclose(type);
  H5Sclose(space);
  H5Dclose(dset);
  return 0;
}

void h5_write_floats(hid_t loc, const char *name, int ndims, const int *dims, const float *data) {
  hsize_t shape[8];
  FP_CHECK(ndims >= 0 && ndims <= 8, "h5_write_floats: rank %d", ndims);
  for (int i = 0; i < ndims; i++) shape[i] = (hsize_t)dims[i];
  hid_t space = ndims ? H5Screate_simple(ndims, shape, NULL) : H5Screate(H5S_SCALAR);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5_CHECK(H5Pset_create_intermediate_group(lcpl, 1));
  hid_t dset = H5Dcreate2(loc, name, H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  if (dset < 0) FP_FATAL("HDF5: cannot create dataset %s", name);
  H5_CHECK(H5Dwrite(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
  H5Dclose(dset);
  H5Pclose(lcpl);
  H5Sclose(space);
}

static hid_t open_attr(hid_t loc, const char *file, const char *name) {
  if (H5Aexists(loc, name) <= 0) FP_FATAL("%s: attribute '%s' is missing", file, name);
  hid_t attr = H5Aopen(loc, name, H5P_DEFAULT);
  if (attr < 0) FP_FATAL("%s: cannot open attribute '%s'", file, name);
  return attr;
}

double h5_read_attr_double(hid_t loc, const char *file, const char *name) {
  hid_t attr = open_attr(loc, file, name);
  double value;
  if (H5Aread(attr, H5T_NATIVE_DOUBLE, &value) < 0)
    FP_FATAL("%s: attribute '%s' is not numeric", file, name);
  H5Aclose(attr);
  return value;
}

long h5_read_attr_long(hid_t loc, const char *file, const char *name) {
  hid_t attr = open_attr(loc, file, name);
  long value;
  if (H5Aread(attr, H5T_NATIVE_LONG, &value) < 0)
    FP_FATAL("%s: attribute '%s' is not an integer", file, name);
  H5Aclose(attr);
  return value;
}

void h5_read_attr_string(hid_t loc, const char *file, const char *name, char *out, size_t cap) {
  hid_t attr = open_attr(loc, file, name);
  hid_t type = H5Aget_type(attr);
  if (H5Tget_class(type) != H5T_STRING) FP_FATAL("%s: attribute '%s' is not a string", file, name);
  if (H5Tis_variable_str(type) > 0) {
    char *value = NULL;
    hid_t mem = H5Tcopy(H5T_C_S1);
    H5_CHECK(H5Tset_size(mem, H5T_VARIABLE));
    H5_CHECK(H5Tset_cset(mem, H5Tget_cset(type))); /* h5py writes UTF-8; HDF5 will not convert */
    H5_CHECK(H5Aread(attr, mem, &value));
    FP_CHECK(value && strlen(value) < cap, "%s: attribute '%s' is too long", file, name);
    strcpy(out, value);
    H5free_memory(value);
    H5Tclose(mem);
  } else {
    size_t size = H5Tget_size(type);
    FP_CHECK(size < cap, "%s: attribute '%s' is too long", file, name);
    hid_t mem = H5Tcopy(H5T_C_S1);
    H5_CHECK(H5Tset_size(mem, size + 1));
    H5_CHECK(H5Tset_cset(mem, H5Tget_cset(type)));
    H5_CHECK(H5Aread(attr, mem, out));
    out[size] = '\0';
    H5Tclose(mem);
  }
  H5Tclose(type);
  H5Aclose(attr);
}

static void write_attr(hid_t loc, const char *name, hid_t file_type, hid_t mem_type,
                       const void *value) {
  if (H5Aexists(loc, name) > 0) H5_CHECK(H5Adelete(loc, name));
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t attr = H5Acreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (attr < 0) FP_FATAL("HDF5: cannot create attribute %s", name);
  H5_CHECK(H5Awrite(attr, mem_type, value));
  H5Aclose(attr);
  H5Sclose(space);
}

void h5_write_attr_long(hid_t loc, const char *name, long value) {
  write_attr(loc, name, H5T_STD_I64LE, H5T_NATIVE_LONG, &value);
}

void h5_write_attr_double(hid_t loc, const char *name, double value) {
  write_attr(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

void h5_write_attr_string(hid_t loc, const char *name, const char *value) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5_CHECK(H5Tset_size(type, H5T_VARIABLE));
  H5_CHECK(H5Tset_cset(type, H5T_CSET_UTF8));
  write_attr(loc, name, type, type, &value);
  H5Tclose(type);
}

static void tensor_path(char *out, size_t cap, const char *group, const char *name) {
  int n = snprintf(out, cap, "%s/%s", group, name);
  FP_CHECK(n > 0 && (size_t)n < cap, "HDF5 path too long: %s/%s", group, name);
}

void h5_read_tensor_list(hid_t loc, const char *file, const char *group, const tensor_list *list,
                         float *host) {
  char path[256];
  for (int i = 0; i < list->count; i++) {
    const named_tensor *t = &list->items[i];
    tensor_path(path, sizeof path, group, t->name);
    if (h5_read_floats(loc, file, path, host + t->offset, t->count) != 0)
      FP_FATAL("%s: tensor %s is missing", file, path);
  }
}

void h5_write_tensor_list(hid_t loc, const char *group, const tensor_list *list,
                          const float *host) {
  char path[256];
  for (int i = 0; i < list->count; i++) {
    const named_tensor *t = &list->items[i];
    tensor_path(path, sizeof path, group, t->name);
    h5_write_floats(loc, path, t->ndims, t->dims, host + t->offset);
  }
}
