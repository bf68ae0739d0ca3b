/* The checks both implementations must pass, on buffers in whatever memory the implementation
 * works on (host for MPI, GPU for NCCL) behind test_memory. */
#ifndef FP_COLLECTIVE_CHECKS_H
#define FP_COLLECTIVE_CHECKS_H

#include "collective.h"

typedef struct test_memory {
  void *(*allocate)(size_t bytes);
  void (*upload)(void *memory, const void *host, size_t bytes);
  void (*download)(void *host, const void *memory, size_t bytes);
  void (*release)(void *memory);
} test_memory;

/* Runs every check, printing each failure with the rank; returns the number of failures. */
int run_collective_checks(collective *c, const test_memory *memory);

/* The rank count the launcher was asked for, from argv, checked against the collective's: a
 * launcher that started independent singletons would otherwise pass everything. */
int check_world_size(collective *c, const char *expected_text);

#endif
