#include "h5zstd.h"

#include <pthread.h>

#include "check.h"
#include "h5zstd_filter.h"

static void register_once(void) {
  FP_CHECK(H5Zregister(&h5zstd_filter_class) >= 0,
           "HDF5 H5Zregister(zstd filter %d) failed (HDF5's error stack above)", H5ZSTD_FILTER_ID);
}

void h5zstd_register(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  FP_CHECK(pthread_once(&once, register_once) == 0, "pthread_once failed");
}
