/* Error reporting shared by every module: each external call is wrapped so a
 * failure names the source file, the line and the library's own message. */
#ifndef FP_CHECK_H
#define FP_CHECK_H

#include <stdio.h>
#include <stdlib.h>

_Noreturn void fp_fatal_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define FP_FATAL(...) fp_fatal_at(__FILE__, __LINE__, __VA_ARGS__)

/* From now on fp_fatal_at starts its message with message_prefix (e.g. "rank 3: ") and, once the
 * message is out, calls stop (e.g. one that MPI_Aborts the whole job) before exiting. NULL
 * restores the plain message and exit. Only the first thread to fail reports and exits; others
 * failing meanwhile wait for the end. Setting the hook re-arms that (after a stop that left
 * fp_fatal_at with a longjmp, as the fuzz harnesses' does). */
void fp_set_fatal_hook(const char *message_prefix, void (*stop)(void));

/* While set (non-NULL), a fatal error on this thread is followed by "(while CONTEXT)": what the
 * program was doing that the failing call may owe its failure to, and what to do about it. The
 * text is copied; NULL clears it. */
void fp_set_fatal_context(const char *context);

#define FP_CHECK(cond, ...)                                                                        \
  do {                                                                                             \
    if (!(cond)) FP_FATAL(__VA_ARGS__);                                                            \
  } while (0)

/* malloc/calloc/realloc that never return NULL. */
void *fp_malloc_at(size_t bytes, const char *file, int line);
void *fp_calloc_at(size_t count, size_t size, const char *file, int line);
#define fp_malloc(bytes) fp_malloc_at((bytes), __FILE__, __LINE__)
#define fp_calloc(count, size) fp_calloc_at((count), (size), __FILE__, __LINE__)
void *fp_realloc_at(void *p, size_t bytes, const char *file, int line);
#define fp_realloc(p, bytes) fp_realloc_at((p), (bytes), __FILE__, __LINE__)

#endif
