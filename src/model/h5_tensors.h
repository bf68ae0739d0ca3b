/* Named float tensors and scalar attributes in HDF5 files: the checkpoint
 * format and the PyTorch-twin dumps both use these. */
#ifndef FP_H5_TENSORS_H
#define FP_H5_TENSORS_H

#include <hdf5.h>
#include <stddef.h>

#include "unet.h"

#define H5_CHECK(call)                                                                             \
  do {                                                                                             \
    if ((call) < 0) FP_FATAL("HDF5: %s failed (HDF5's error stack is printed above)", #call);      \
  } while (0)

hid_t h5_open_read(const char *path);

/* Reads dataset `name` (float32 or float64 on disk) as floats; the element
 * count must equal `count`. Returns 0, or -1 if the dataset does not exist.
 * `file` names the file in error messages. */
int h5_read_floats(hid_t loc, const char *file, const char *name, float *out, size_t count);
void h5_write_floats(hid_t loc, const char *name, int ndims, const int *dims, const float *data);

double h5_read_attr_double(hid_t loc, const char *file, const char *name);
long h5_read_attr_long(hid_t loc, const char *file, const char *name);
/* Reads a string attribute into out (cap bytes). */
void h5_read_attr_string(hid_t loc, const char *file, const char *name, char *out, size_t cap);
void h5_write_attr_long(hid_t loc, const char *name, long value);
void h5_write_attr_double(hid_t loc, const char *name, double value);
void h5_write_attr_string(hid_t loc, const char *name, const char *value);

/* Every tensor of `list` from group/<name> into host (indexed by offsets).
 * Missing tensors are an error naming the file and the tensor. */
void h5_read_tensor_list(hid_t loc, const char *file, const char *group, const tensor_list *list,
                         float *host);
void h5_write_tensor_list(hid_t loc, const char *group, const tensor_list *list, const float *host);

#endif
