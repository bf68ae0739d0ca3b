/* Entry points HDF5 looks up when it loads libh5zstd.so from HDF5_PLUGIN_PATH. */
#include <H5PLextern.h>

#include "h5zstd_filter.h"

__attribute__((visibility("default"))) H5PL_type_t H5PLget_plugin_type(void) {
  return H5PL_TYPE_FILTER;
}

__attribute__((visibility("default"))) const void *H5PLget_plugin_info(void) {
  return &h5zstd_filter_class;
}
