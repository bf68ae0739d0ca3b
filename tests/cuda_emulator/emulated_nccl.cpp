/* NCCL for the CUDA emulator: each collective is queued on its stream and, when the stream runs
 * it, done over MPI on a communicator of its own (the emulated device memory is host memory).
 * Every rank runs the same calls in the same order and its streams run only when waited for,
 * at the same points of the program on every rank, so the ranks meet in the same collectives.
 * Checked as NCCL would: the ranks are MPI_COMM_WORLD's, in its order; graph capture uniform. */
#include <mpi.h>

#include <cstring>

#include "emulator_internal.h"
#include "nccl.h"

struct emu_nccl_comm {
  MPI_Comm mpi;
  int ranks;
};

namespace {

const char *const unique_id_text = "cuda emulator nccl";

void mpi_check(int status, const char *call) {
  if (status != MPI_SUCCESS) emu::fatal("NCCL over MPI: %s failed (%d)", call, status);
}

/* NCCL requires an operation to be captured in a graph on every rank or on none (and a graph
 * holding one to be launched on every rank): checked as each runs, where the ranks meet in
 * order, so that a rank replaying while another runs eagerly stops here rather than hanging. */
void check_uniform_capture(MPI_Comm mpi, int captured, const char *call) {
  int flags[2] = {captured, -captured};
  mpi_check(MPI_Allreduce(MPI_IN_PLACE, flags, 2, MPI_INT, MPI_MAX, mpi), "MPI_Allreduce");
  if (flags[0] != -flags[1])
    emu::fatal("%s: captured in a graph on some ranks and run eagerly on others (NCCL requires "
               "the same on every rank)",
               call);
}

} // namespace

extern "C" {

const char *ncclGetErrorString(ncclResult_t result) {
  return result == ncclSuccess ? "no error" : "invalid usage";
}

const char *ncclGetLastError(ncclComm_t comm) {
  (void)comm;
  return "";
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
  memset(id, 0, sizeof *id);
  snprintf(id->internal, sizeof id->internal, "%s", unique_id_text);
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *comm, int ranks, ncclUniqueId id, int rank) {
  int initialised = 0, world_ranks = 0, world_rank = 0;
  MPI_Initialized(&initialised);
  if (!initialised) emu::fatal("ncclCommInitRank: the emulator's NCCL needs MPI initialised");
  if (strcmp(id.internal, unique_id_text))
    emu::fatal("ncclCommInitRank: a unique id ncclGetUniqueId did not make (not broadcast?)");
  MPI_Comm_size(MPI_COMM_WORLD, &world_ranks);
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  if (ranks != world_ranks || rank != world_rank)
    emu::fatal("ncclCommInitRank: rank %d of %d, but MPI's world is rank %d of %d", rank, ranks,
               world_rank, world_ranks);
  *comm = new emu_nccl_comm{MPI_COMM_NULL, ranks};
  mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &(*comm)->mpi), "MPI_Comm_dup");
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  mpi_check(MPI_Comm_free(&comm->mpi), "MPI_Comm_free");
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void *send, void *receive, size_t count, ncclDataType_t type,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
  if (type != ncclFloat || (op != ncclSum && op != ncclAvg) || count > (size_t)1 << 30)
    return ncclInvalidArgument;
  emu::check_device_range(send, count * sizeof(float), "ncclAllReduce send buffer");
  emu::check_device_range(receive, count * sizeof(float), "ncclAllReduce receive buffer");
  const MPI_Comm mpi = comm->mpi;
  const int ranks = comm->ranks, captured = emu::recording(stream);
  emu::queue(stream, [=]() {
    check_uniform_capture(mpi, captured, "ncclAllReduce");
    float *out = (float *)receive;
    mpi_check(MPI_Allreduce(send == receive ? MPI_IN_PLACE : send, out, (int)count, MPI_FLOAT,
                            MPI_SUM, mpi),
              "MPI_Allreduce");
    if (op == ncclAvg)
      for (size_t i = 0; i < count; i++) out[i] /= (float)ranks;
  });
  return ncclSuccess;
}

ncclResult_t ncclBroadcast(const void *send, void *receive, size_t count, ncclDataType_t type,
                           int root, ncclComm_t comm, cudaStream_t stream) {
  if (type != ncclUint8 || count > (size_t)1 << 30 || root < 0 || root >= comm->ranks)
    return ncclInvalidArgument;
  emu::check_device_range(receive, count, "ncclBroadcast receive buffer");
  const MPI_Comm mpi = comm->mpi;
  const int captured = emu::recording(stream);
  emu::queue(stream, [=]() {
    check_uniform_capture(mpi, captured, "ncclBroadcast");
    if (send != receive) memmove(receive, send, count);
    mpi_check(MPI_Bcast(receive, (int)count, MPI_BYTE, root, mpi), "MPI_Bcast");
  });
  return ncclSuccess;
}

} /* extern "C" */
