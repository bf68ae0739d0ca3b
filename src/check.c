#include "check.h"

#include <stdarg.h>

void fp_fatal_at(const char *file, int line, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  fprintf(stderr, "error: ");
  vfprintf(stderr, fmt, args);
  fprintf(stderr, " [%s:%d]\n", file, line);
  va_end(args);
  fflush(stderr);
  exit(1);
}

void *fp_malloc_at(size_t bytes, const char *file, int line) {
  void *p = malloc(bytes ? bytes : 1);
  if (!p) fp_fatal_at(file, line, "out of memory allocating %zu bytes", bytes);
  return p;
}

void *fp_calloc_at(size_t count, size_t size, const char *file, int line) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (!p) fp_fatal_at(file, line, "out of memory allocating %zu x %zu bytes", count, size);
  return p;
}
