#include "check.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <unistd.h>

static char fatal_prefix[64];
static void (*fatal_stop)(void);
/* The first fatal error ends the process; one on another thread meanwhile (an OpenMP worker, the
 * loader) waits for that, so that exit() runs its handlers once, not on two threads at once. A
 * fatal error inside the stop hook itself (same thread) exits at once. */
static atomic_flag fatal_started = ATOMIC_FLAG_INIT;
static _Thread_local int fatal_on_this_thread;
static _Thread_local char fatal_context[320];

void fp_set_fatal_hook(const char *message_prefix, void (*stop)(void)) {
  snprintf(fatal_prefix, sizeof fatal_prefix, "%s", message_prefix ? message_prefix : "");
  fatal_stop = stop;
  fatal_on_this_thread = 0;
  atomic_flag_clear(&fatal_started);
}

void fp_set_fatal_context(const char *context) {
  snprintf(fatal_context, sizeof fatal_context, "%s", context ? context : "");
}

void fp_fatal_at(const char *file, int line, const char *fmt, ...) {
  if (fatal_on_this_thread) exit(1);
  fatal_on_this_thread = 1;
  if (atomic_flag_test_and_set(&fatal_started))
    for (;;) pause();
  va_list args;
  va_start(args, fmt);
  fprintf(stderr, "%serror: ", fatal_prefix);
  vfprintf(stderr, fmt, args);
  fprintf(stderr, " [%s:%d]\n", file, line);
  if (fatal_context[0]) fprintf(stderr, "%s  (while %s)\n", fatal_prefix, fatal_context);
  va_end(args);
  fflush(stderr);
  if (fatal_stop) fatal_stop();
  exit(1);
}

void *fp_malloc_at(size_t bytes, const char *file, int line) {
  void *p = malloc(bytes ? bytes : 1);
  if (!p) fp_fatal_at(file, line, "out of memory allocating %zu bytes", bytes);
  return p;
}

void *fp_realloc_at(void *p, size_t bytes, const char *file, int line) {
  void *grown = realloc(p, bytes ? bytes : 1);
  if (!grown) fp_fatal_at(file, line, "out of memory growing a buffer to %zu bytes", bytes);
  return grown;
}

void *fp_calloc_at(size_t count, size_t size, const char *file, int line) {
  void *p = calloc(count ? count : 1, size ? size : 1);
  if (!p) fp_fatal_at(file, line, "out of memory allocating %zu x %zu bytes", count, size);
  return p;
}
