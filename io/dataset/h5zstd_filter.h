/* The zstd filter class shared by the static library (h5zstd_register) and
 * the dynamically loaded plugin. Calls no HDF5 function, see CMakeLists.txt. */
#ifndef FP_H5ZSTD_FILTER_H
#define FP_H5ZSTD_FILTER_H

#include <hdf5.h>

extern const H5Z_class2_t h5zstd_filter_class;

#endif
