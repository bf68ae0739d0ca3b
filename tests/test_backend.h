/* The backend a C test runs on: $FP_TEST_BACKEND (default cpu). */
#ifndef FP_TEST_BACKEND_H
#define FP_TEST_BACKEND_H

#include <stdlib.h>

#include "backend.h"
#include "check.h"

static inline const backend *test_backend(void) {
  const char *name = getenv("FP_TEST_BACKEND");
  char why[256];
  const backend *be = backend_open(name ? name : "cpu", why, sizeof why);
  if (!be) FP_FATAL("FP_TEST_BACKEND: %s", why);
  return be;
}

#endif
