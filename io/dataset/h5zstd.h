/* Zstandard compression for HDF5 datasets: filter id 32015, the id registered
 * with The HDF Group for Zstandard. cd_values[0] is the compression level, as
 * in the standard HDF5 zstd plugin, so files are exchangeable with PyPI's
 * hdf5plugin and with h5dump given HDF5_PLUGIN_PATH=<build>/plugins. */
#ifndef FP_H5ZSTD_H
#define FP_H5ZSTD_H

#define H5ZSTD_FILTER_ID 32015
#define H5ZSTD_DEFAULT_LEVEL 3

/* Registers the filter with the HDF5 library linked into this program.
 * Idempotent and thread-safe; FP_FATAL if HDF5 refuses. */
void h5zstd_register(void);

#endif
