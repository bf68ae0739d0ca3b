/* MPI set-up shared by both implementations, the fatal-error hook, and dispatch to the chosen
 * implementation's operations. */
#include "collective_internal.h"

static void abort_job(void) {
  /* Every rank stops now, not when a peer's collective times out or hangs. A loader thread may
   * get here too: MPI_THREAD_FUNNELED strictly allows MPI calls from the main thread only, but
   * Open MPI's MPI_Abort works from any (tests/collective: collective_fatal_thread). */
  MPI_Abort(MPI_COMM_WORLD, 1);
}

void collective_abort_job_on_fatal(void) {
  int rank, size;
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
  if (size == 1) return;
  char prefix[32];
  snprintf(prefix, sizeof prefix, "rank %d: ", rank);
  fp_set_fatal_hook(prefix, abort_job);
}

collective *collective_init(collective_kind kind) {
  collective *c = fp_calloc(1, sizeof *c);
  int initialised = 0;
  MPI_CHECK(MPI_Initialized(&initialised));
  int thread_level = MPI_THREAD_SINGLE;
  if (initialised) {
    MPI_CHECK(MPI_Query_thread(&thread_level));
  } else {
    MPI_CHECK(MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &thread_level));
    c->finalize_mpi = 1;
  }
  FP_CHECK(thread_level >= MPI_THREAD_FUNNELED,
           "MPI gives thread level %d; collectives need MPI_THREAD_FUNNELED (%d) or better",
           thread_level, MPI_THREAD_FUNNELED);
  MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &c->comm));
  MPI_CHECK(MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN));
  MPI_CHECK(MPI_Comm_rank(c->comm, &c->rank));
  MPI_CHECK(MPI_Comm_size(c->comm, &c->size));
  collective_abort_job_on_fatal();
  switch (kind) {
  case COLLECTIVE_MPI:
    collective_mpi_attach(c);
    break;
  case COLLECTIVE_NCCL:
#ifdef FP_HAVE_CUDA
    collective_nccl_attach(c);
#else
    FP_FATAL("NCCL collectives need a build with CUDA and NCCL (FP_HAVE_CUDA); this one has "
             "neither");
#endif
    break;
  default:
    FP_FATAL("unknown collective kind %d", (int)kind);
  }
  return c;
}

void collective_destroy(collective *c) {
  if (c->ops->destroy) c->ops->destroy(c);
  MPI_CHECK(MPI_Comm_free(&c->comm));
  fp_set_fatal_hook(NULL, NULL);
  if (c->finalize_mpi) MPI_CHECK(MPI_Finalize());
  free(c);
}

int collective_rank(const collective *c) {
  return c->rank;
}
int collective_size(const collective *c) {
  return c->size;
}
const char *collective_name(const collective *c) {
  return c->name;
}

void collective_allreduce_sum(collective *c, float *buffer, size_t count) {
  c->ops->allreduce_sum(c, buffer, count);
}

void collective_allreduce_mean(collective *c, float *buffer, size_t count) {
  c->ops->allreduce_mean(c, buffer, count);
}

collective_request *collective_allreduce_mean_start(collective *c, float *buffer, size_t count) {
  return c->ops->allreduce_mean_start(c, buffer, count);
}

void collective_wait(collective *c, collective_request *request) {
  FP_CHECK(request, "collective_wait on a NULL request");
  c->ops->wait(c, request);
}

void collective_set_device_stream(collective *c, void *cuda_stream) {
  if (c->ops->set_device_stream) c->ops->set_device_stream(c, cuda_stream);
}

void collective_broadcast(collective *c, void *buffer, size_t bytes, int root) {
  c->ops->broadcast(c, buffer, bytes, root);
}

void collective_allreduce_sum_host_doubles(collective *c, double *values, size_t count) {
  collective_mpi_allreduce_in_place(c->comm, values, count, MPI_DOUBLE, MPI_SUM);
}

int collective_min_host_int(collective *c, int value) {
  collective_mpi_allreduce_in_place(c->comm, &value, 1, MPI_INT, MPI_MIN);
  return value;
}

int collective_all_equal_u64(collective *c, unsigned long long value) {
  /* One reduction instead of a min and a max: max(~v) is ~min(v). */
  unsigned long long max_and_inverted_min[2] = {value, ~value};
  collective_mpi_allreduce_in_place(c->comm, max_and_inverted_min, 2, MPI_UNSIGNED_LONG_LONG,
                                    MPI_MAX);
  return max_and_inverted_min[0] == ~max_and_inverted_min[1];
}

void collective_barrier(collective *c) {
  MPI_CHECK(MPI_Barrier(c->comm));
}
