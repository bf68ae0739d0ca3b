/* Collectives on host buffers over MPI; the mean is the sum divided by the rank count. */
#include "collective_internal.h"

#include <limits.h>

static size_t max_piece = (size_t)1 << 30;

void collective_mpi_set_max_piece(size_t elements) {
  FP_CHECK(elements > 0 && elements <= INT_MAX, "max piece %zu outside [1, INT_MAX]", elements);
  max_piece = elements;
}

static int piece_count(size_t count) {
  size_t pieces = count / max_piece + (count % max_piece != 0);
  FP_CHECK(pieces <= INT_MAX, "%zu elements is too many for MPI", count);
  return (int)pieces;
}

static size_t piece_length(size_t count, size_t start) {
  return count - start < max_piece ? count - start : max_piece;
}

static char *element_at(void *buffer, size_t index, MPI_Datatype type) {
  int type_bytes = 0;
  MPI_CHECK(MPI_Type_size(type, &type_bytes));
  return (char *)buffer + index * (size_t)type_bytes;
}

void collective_mpi_allreduce_in_place(MPI_Comm comm, void *buffer, size_t count, MPI_Datatype type,
                                       MPI_Op op) {
  for (size_t start = 0; start < count; start += max_piece)
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, element_at(buffer, start, type),
                            (int)piece_length(count, start), type, op, comm));
}

void collective_mpi_broadcast_bytes(MPI_Comm comm, void *buffer, size_t bytes, int root) {
  for (size_t start = 0; start < bytes; start += max_piece)
    MPI_CHECK(
        MPI_Bcast((char *)buffer + start, (int)piece_length(bytes, start), MPI_BYTE, root, comm));
}

static void divide_by_ranks(const collective *c, float *buffer, size_t count) {
  const float ranks = (float)c->size;
  for (size_t i = 0; i < count; i++) buffer[i] /= ranks;
}

static void mpi_allreduce_sum(collective *c, float *buffer, size_t count) {
  collective_mpi_allreduce_in_place(c->comm, buffer, count, MPI_FLOAT, MPI_SUM);
}

static void mpi_allreduce_mean(collective *c, float *buffer, size_t count) {
  mpi_allreduce_sum(c, buffer, count);
  divide_by_ranks(c, buffer, count);
}

static collective_request *mpi_allreduce_mean_start(collective *c, float *buffer, size_t count) {
  collective_request *request = fp_calloc(1, sizeof *request);
  request->buffer = buffer;
  request->count = count;
  request->piece_count = piece_count(count);
  request->pieces = fp_calloc((size_t)request->piece_count, sizeof *request->pieces);
  for (int piece = 0; piece < request->piece_count; piece++) {
    size_t start = (size_t)piece * max_piece;
    MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, buffer + start, (int)piece_length(count, start),
                             MPI_FLOAT, MPI_SUM, c->comm, &request->pieces[piece]));
  }
  return request;
}

static void mpi_wait(collective *c, collective_request *request) {
  MPI_CHECK(MPI_Waitall(request->piece_count, request->pieces, MPI_STATUSES_IGNORE));
  divide_by_ranks(c, request->buffer, request->count);
  free(request->pieces);
  free(request);
}

static void mpi_broadcast(collective *c, void *buffer, size_t bytes, int root) {
  collective_mpi_broadcast_bytes(c->comm, buffer, bytes, root);
}

static const struct collective_ops mpi_ops = {
    .allreduce_sum = mpi_allreduce_sum,
    .allreduce_mean = mpi_allreduce_mean,
    .allreduce_mean_start = mpi_allreduce_mean_start,
    .wait = mpi_wait,
    .broadcast = mpi_broadcast,
    .set_device_stream = NULL,
    .destroy = NULL,
};

void collective_mpi_attach(collective *c) {
  c->ops = &mpi_ops;
  c->name = "mpi";
}
