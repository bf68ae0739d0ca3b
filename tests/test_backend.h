/* The backend a C test runs on: $FP_TEST_BACKEND (default cpu). A test asked to run on cuda
 * where that backend cannot open (no GPU visible, or not built in) is skipped: exit 77, ctest's
 * SKIP_RETURN_CODE for the GPU tests. */
#ifndef FP_TEST_BACKEND_H
#define FP_TEST_BACKEND_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"

static inline const backend *test_backend(void) {
  const char *name = getenv("FP_TEST_BACKEND");
  char why[256];
  const backend *be = backend_open(name ? name : "cpu", why, sizeof why);
  if (!be && name && !strcmp(name, "cuda")) {
    printf("skipped: FP_TEST_BACKEND=cuda: %s\n", why);
    exit(77);
  }
  if (!be) FP_FATAL("FP_TEST_BACKEND: %s", why);
  return be;
}

/* 1 when the backend computes in `type` here; else says why not and returns 0. */
static inline int test_precision_runs(const backend *be, fp_dtype type) {
  char why[256];
  if (be->dtype_support(type, why, sizeof why) != DTYPE_NOT_NATIVE) return 1;
  printf("%s not checked: %s\n", fp_dtype_name(type), why);
  return 0;
}

#endif
