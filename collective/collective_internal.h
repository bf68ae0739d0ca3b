/* What the dispatcher (collective.c) and the two implementations share; not for users. */
#ifndef FP_COLLECTIVE_INTERNAL_H
#define FP_COLLECTIVE_INTERNAL_H

#include "check.h"
#include "collective.h"

#include <mpi.h>

#include "mpi_check.h"

struct collective_ops {
  void (*allreduce_sum)(collective *c, float *buffer, size_t count);
  void (*allreduce_mean)(collective *c, float *buffer, size_t count);
  collective_request *(*allreduce_mean_start)(collective *c, float *buffer, size_t count);
  void (*wait)(collective *c, collective_request *request);
  void (*broadcast)(collective *c, void *buffer, size_t bytes, int root);
  void (*set_device_stream)(collective *c, void *cuda_stream); /* NULL: host buffers only */
  void (*destroy)(collective *c); /* NULL: nothing of its own to release */
};

struct collective {
  const struct collective_ops *ops;
  const char *name;
  /* A duplicate of MPI_COMM_WORLD, returning errors instead of aborting, so MPI_CHECK can name
   * the call; the host helpers and the NCCL id broadcast use it too. */
  MPI_Comm comm;
  int rank, size;
  int finalize_mpi; /* collective_init initialised MPI, so collective_destroy finalises it */
  struct nccl_state *nccl;
};

struct CUevent_st; /* what cudaEvent_t points to, so this header needs no CUDA header */

struct collective_request {
  /* MPI: one MPI_Iallreduce per piece of at most max-piece elements; the mean's division by the
   * rank count happens in wait, so buffer and count are kept. */
  MPI_Request *pieces;
  int piece_count;
  float *buffer;
  size_t count;
  /* NCCL: recorded on the communication stream right after the ncclAllReduce. */
  struct CUevent_st *done;
};

void collective_mpi_attach(collective *c);
#ifdef FP_HAVE_CUDA
void collective_nccl_attach(collective *c);
#endif

/* MPI counts are int: buffers are reduced in pieces of at most this many elements (2^30 unless a
 * test makes it small to exercise the piecewise path). */
void collective_mpi_set_max_piece(size_t elements);
/* The MPI calls on c->comm, in pieces, for both implementations' host-memory helpers. */
void collective_mpi_allreduce_in_place(MPI_Comm comm, void *buffer, size_t count, MPI_Datatype type,
                                       MPI_Op op);
void collective_mpi_broadcast_bytes(MPI_Comm comm, void *buffer, size_t bytes, int root);

#endif
