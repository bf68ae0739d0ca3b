/* Checks on HDF5 return values: a failure stops the program with the call's
 * text, the file and field it was about (caller's format) and the source
 * location; HDF5 prints its own error stack just before. */
#ifndef FP_H5CHECK_H
#define FP_H5CHECK_H

#include <hdf5.h>

hid_t h5_check_id_at(hid_t id, const char *call, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
herr_t h5_check_at(herr_t status, const char *call, const char *file, int line, const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));

/* H5_ID(H5Dopen2(f, "/images", H5P_DEFAULT), "%s: /images", path) */
#define H5_ID(call, ...) h5_check_id_at((call), #call, __FILE__, __LINE__, __VA_ARGS__)
#define H5_OK(call, ...) h5_check_at((call), #call, __FILE__, __LINE__, __VA_ARGS__)

/* A fixed-length, NUL-terminated ASCII string type of `length` bytes (caller closes it). */
hid_t h5_fixed_string_type(size_t length);

#endif
