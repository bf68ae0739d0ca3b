#include "check.h"

#include <stdarg.h>

static char fatal_prefix[64];
static void (*fatal_stop)(void);

void fp_set_fatal_hook(const char *message_prefix, void (*stop)(void)) {
  snprintf(fatal_prefix, sizeof fatal_prefix, "%s", message_prefix ? message_prefix : "");
  fatal_stop = stop;
}

void fp_fatal_at(const char *file, int line, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  fprintf(stderr, "%serror: ", fatal_prefix);
  vfprintf(stderr, fmt, args);
  fprintf(stderr, " [%s:%d]\n", file, line);
  va_end(args);
  fflush(stderr);
  /* Cleared first: a stop that fails fatally itself must not recurse. */
  void (*stop)(void) = fatal_stop;
  fatal_stop = NULL;
  if (stop) stop();
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
