#include "h5check.h"

#include <stdarg.h>
#include <stdio.h>

#include "check.h"

static _Noreturn void h5_failure(const char *call, const char *file, int line, const char *fmt,
                                 va_list args) {
  char context[1024];
  vsnprintf(context, sizeof context, fmt, args);
  fp_fatal_at(file, line, "%s: HDF5 call %s failed (HDF5's error stack above)", context, call);
}

hid_t h5_check_id_at(hid_t id, const char *call, const char *file, int line, const char *fmt, ...) {
  if (id < 0) {
    va_list args;
    va_start(args, fmt);
    h5_failure(call, file, line, fmt, args);
  }
  return id;
}

herr_t h5_check_at(herr_t status, const char *call, const char *file, int line, const char *fmt,
                   ...) {
  if (status < 0) {
    va_list args;
    va_start(args, fmt);
    h5_failure(call, file, line, fmt, args);
  }
  return status;
}

hid_t h5_fixed_string_type(size_t length) {
  hid_t type = H5_ID(H5Tcopy(H5T_C_S1), "string type");
  H5_OK(H5Tset_size(type, length), "string type");
  H5_OK(H5Tset_strpad(type, H5T_STR_NULLTERM), "string type");
  return type;
}
