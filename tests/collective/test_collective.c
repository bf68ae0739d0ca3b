/* collective/ over MPI, run under mpirun.
 *   test_collective checks RANKS   every check, then again reducing in small pieces
 *   test_collective fatal          the last rank fails with FP_FATAL while the others wait in a
 *                                  barrier: the job must stop at once, naming the rank
 *   test_collective fatal_thread   the same, FP_FATAL called from another thread (a loader's)
 *   test_collective mpi_error      a broadcast from a root outside the world: MPI's own message */
#include "check.h"
#include "collective_checks.h"
#include "collective_internal.h"

#include <pthread.h>
#include <string.h>

static void *host_allocate(size_t bytes) {
  return fp_malloc(bytes);
}
static void host_copy(void *to, const void *from, size_t bytes) {
  memcpy(to, from, bytes);
}

static const test_memory host_memory = {
    .allocate = host_allocate,
    .upload = host_copy,
    .download = host_copy,
    .release = free,
};

static int run_checks(const char *ranks_text) {
  collective *c = collective_init(COLLECTIVE_MPI);
  int failures = check_world_size(c, ranks_text);
  if (strcmp(collective_name(c), "mpi") != 0) {
    printf("rank %d: FAIL name is '%s', expected 'mpi'\n", collective_rank(c), collective_name(c));
    failures++;
  }
  failures += run_collective_checks(c, &host_memory);
  /* 999 elements a piece: counts of 1001 and more cross piece boundaries, with odd remainders. */
  collective_mpi_set_max_piece(999);
  failures += run_collective_checks(c, &host_memory);
  printf("rank %d of %d: %d failures\n", collective_rank(c), collective_size(c), failures);
  collective_destroy(c);
  return failures ? 1 : 0;
}

static void *fail_in_thread(void *unused) {
  (void)unused;
  FP_FATAL("deliberate failure on the last rank, in a second thread");
}

/* The last rank fails (in its main thread or a second one) while the others wait in a barrier it
 * never enters: only the fatal hook's MPI_Abort can end them. */
static int fail_on_last_rank(int in_thread) {
  collective *c = collective_init(COLLECTIVE_MPI);
  collective_barrier(c);
  if (collective_rank(c) == collective_size(c) - 1) {
    if (!in_thread) FP_FATAL("deliberate failure on the last rank");
    pthread_t thread;
    FP_CHECK(pthread_create(&thread, NULL, fail_in_thread, NULL) == 0, "pthread_create failed");
    FP_CHECK(pthread_join(thread, NULL) == 0, "pthread_join failed");
  }
  collective_barrier(c);
  FP_FATAL("a barrier returned although the last rank never entered it");
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "checks")) return run_checks(argv[2]);
  if (argc == 2 && !strcmp(argv[1], "fatal")) return fail_on_last_rank(0);
  if (argc == 2 && !strcmp(argv[1], "fatal_thread")) return fail_on_last_rank(1);
  if (argc == 2 && !strcmp(argv[1], "mpi_error")) {
    collective *c = collective_init(COLLECTIVE_MPI);
    float value = 1.0f;
    collective_broadcast(c, &value, sizeof value, collective_size(c));
    FP_FATAL("a broadcast from root %d of %d ranks returned", collective_size(c),
             collective_size(c));
  }
  fprintf(stderr, "usage: test_collective checks RANKS | fatal | fatal_thread | mpi_error\n");
  return 2;
}
