/* Collectives on GPU buffers over NCCL, one rank per GPU. The calls run on a communication stream
 * of their own, ordered after the caller's stream (collective_set_device_stream), so a started
 * all-reduce overlaps the compute queued after it, and collective_wait orders the caller's stream
 * after it without blocking the host; the host helpers stay on MPI. */
#include "collective_internal.h"
#include "launcher.h"
#include "nccl_check.h"

#include <stdlib.h>
#include <string.h>

struct nccl_state {
  int device;
  ncclComm_t comm;
  cudaStream_t communication;
  cudaStream_t compute; /* the caller's; 0 is the legacy default stream */
  cudaEvent_t compute_done;
  /* the requests' events, reused: none is created or destroyed once a pass has run (a pass
   * recorded as a CUDA graph then makes no such call) */
  cudaEvent_t *spare_events;
  int spare_count, spare_capacity;
};

/* The ranks on this rank's node. */
static MPI_Comm node_ranks(const collective *c) {
  MPI_Comm node;
  MPI_CHECK(MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node));
  return node;
}

/* The rank's index among the ranks on its node, from the launcher or, failing that, from MPI. */
static int local_rank(MPI_Comm node) {
  int from_launcher = launcher_local_rank();
  if (from_launcher >= 0) return from_launcher;
  int rank_on_node = 0;
  MPI_CHECK(MPI_Comm_rank(node, &rank_on_node));
  return rank_on_node;
}

/* Ranks that each see one GPU may still see the same one (a job step without --gpus-per-task, or
 * one GPU for two ranks): NCCL would then refuse to start with "invalid usage". Compared by the
 * devices' UUIDs over the node's ranks, so the message can say what happened. */
static void check_gpu_of_its_own(const collective *c, MPI_Comm node, int device) {
  struct cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  int rank_on_node = 0, on_node = 0;
  MPI_CHECK(MPI_Comm_rank(node, &rank_on_node));
  MPI_CHECK(MPI_Comm_size(node, &on_node));
  enum { UUID_BYTES = sizeof prop.uuid.bytes };
  char *uuids = fp_malloc((size_t)on_node * UUID_BYTES);
  MPI_CHECK(
      MPI_Allgather(prop.uuid.bytes, UUID_BYTES, MPI_BYTE, uuids, UUID_BYTES, MPI_BYTE, node));
  for (int other = 0; other < on_node; other++)
    FP_CHECK(other == rank_on_node ||
                 memcmp(uuids + (size_t)other * UUID_BYTES, prop.uuid.bytes, UUID_BYTES) != 0,
             "rank %d (rank %d of its node) uses the same GPU as rank %d of its node (%s, "
             "device %d here): NCCL runs one rank per GPU; start at most as many ranks per node "
             "as it has GPUs, each with its own (mpirun -np, srun --gpus-per-task=1)",
             c->rank, rank_on_node, other, prop.name, device);
  free(uuids);
}

static void after_compute(struct nccl_state *s) {
  CUDA_CHECK(cudaEventRecord(s->compute_done, s->compute));
  CUDA_CHECK(cudaStreamWaitEvent(s->communication, s->compute_done, 0));
}

static void nccl_allreduce(collective *c, float *buffer, size_t count, ncclRedOp_t op) {
  struct nccl_state *s = c->nccl;
  after_compute(s);
  NCCL_CHECK(ncclAllReduce(buffer, buffer, count, ncclFloat, op, s->comm, s->communication));
  CUDA_CHECK(cudaStreamSynchronize(s->communication));
}

static void nccl_allreduce_sum(collective *c, float *buffer, size_t count) {
  nccl_allreduce(c, buffer, count, ncclSum);
}

static void nccl_allreduce_mean(collective *c, float *buffer, size_t count) {
  nccl_allreduce(c, buffer, count, ncclAvg);
}

static cudaEvent_t take_event(struct nccl_state *s) {
  cudaEvent_t event;
  if (s->spare_count > 0) return s->spare_events[--s->spare_count];
  CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  return event;
}

static collective_request *nccl_allreduce_mean_start(collective *c, float *buffer, size_t count) {
  struct nccl_state *s = c->nccl;
  collective_request *request = fp_calloc(1, sizeof *request);
  after_compute(s);
  NCCL_CHECK(ncclAllReduce(buffer, buffer, count, ncclFloat, ncclAvg, s->comm, s->communication));
  request->done = take_event(s);
  CUDA_CHECK(cudaEventRecord(request->done, s->communication));
  return request;
}

/* The caller's stream waits for the reduction, the host does not: what it queues next (the
 * optimiser's update) is ordered after it and can be queued while the reduction still runs. The
 * event may be recorded again at once: a wait already queued keeps the work it was given. */
static void nccl_wait(collective *c, collective_request *request) {
  struct nccl_state *s = c->nccl;
  CUDA_CHECK(cudaStreamWaitEvent(s->compute, request->done, 0));
  if (s->spare_count == s->spare_capacity) {
    s->spare_capacity = s->spare_capacity ? 2 * s->spare_capacity : 8;
    s->spare_events = fp_realloc(s->spare_events, (size_t)s->spare_capacity * sizeof(cudaEvent_t));
  }
  s->spare_events[s->spare_count++] = request->done;
  free(request);
}

static void nccl_broadcast(collective *c, void *buffer, size_t bytes, int root) {
  struct nccl_state *s = c->nccl;
  after_compute(s);
  NCCL_CHECK(ncclBroadcast(buffer, buffer, bytes, ncclUint8, root, s->comm, s->communication));
  CUDA_CHECK(cudaStreamSynchronize(s->communication));
}

static void nccl_set_device_stream(collective *c, void *cuda_stream) {
  c->nccl->compute = (cudaStream_t)cuda_stream;
}

static void nccl_destroy(collective *c) {
  struct nccl_state *s = c->nccl;
  CUDA_CHECK(cudaStreamSynchronize(s->communication));
  NCCL_CHECK(ncclCommDestroy(s->comm));
  CUDA_CHECK(cudaEventDestroy(s->compute_done));
  for (int i = 0; i < s->spare_count; i++) CUDA_CHECK(cudaEventDestroy(s->spare_events[i]));
  free(s->spare_events);
  CUDA_CHECK(cudaStreamDestroy(s->communication));
  free(s);
  c->nccl = NULL;
}

static const struct collective_ops nccl_ops = {
    .allreduce_sum = nccl_allreduce_sum,
    .allreduce_mean = nccl_allreduce_mean,
    .allreduce_mean_start = nccl_allreduce_mean_start,
    .wait = nccl_wait,
    .broadcast = nccl_broadcast,
    .set_device_stream = nccl_set_device_stream,
    .destroy = nccl_destroy,
};

void collective_nccl_attach(collective *c) {
  struct nccl_state *s = fp_calloc(1, sizeof *s);
  int devices = 0;
  CUDA_CHECK(cudaGetDeviceCount(&devices));
  /* Slurm's --gpus-per-task leaves each rank exactly its own GPU visible, as device 0. The CUDA
   * backend, opened first, chose its GPU from the launcher's local rank alone (GPU 0 without
   * one): the node-local rank found here through MPI must not choose another. */
  MPI_Comm node = node_ranks(c);
  int rank_on_node = local_rank(node);
  s->device = devices == 1 ? 0 : rank_on_node;
  FP_CHECK(s->device < devices,
           "local rank %d has no GPU of its own: %d visible (NCCL runs one rank per GPU)",
           rank_on_node, devices);
  FP_CHECK(devices == 1 || s->device == 0 || launcher_local_rank() >= 0,
           "rank %d is rank %d on its node and sees %d GPUs, but the launcher set none of "
           "OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID, MPI_LOCALRANKID, so the CUDA backend took "
           "GPU 0: let each rank see its own GPU only (srun --gpus-per-task=1, "
           "CUDA_VISIBLE_DEVICES) or launch with mpirun or srun",
           c->rank, rank_on_node, devices);
  CUDA_CHECK(cudaSetDevice(s->device));
  check_gpu_of_its_own(c, node, s->device);
  MPI_CHECK(MPI_Comm_free(&node));
  CUDA_CHECK(cudaStreamCreateWithFlags(&s->communication, cudaStreamNonBlocking));
  CUDA_CHECK(cudaEventCreateWithFlags(&s->compute_done, cudaEventDisableTiming));
  ncclUniqueId id;
  if (c->rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
  collective_mpi_broadcast_bytes(c->comm, &id, sizeof id, 0);
  NCCL_CHECK(ncclCommInitRank(&s->comm, c->size, id, c->rank));
  c->nccl = s;
  c->ops = &nccl_ops;
  c->name = "nccl";
}
