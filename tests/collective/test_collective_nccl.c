/* collective/ over NCCL on GPU buffers: test_collective_nccl RANKS, under mpirun -np RANKS.
 * Exits 77 (skipped) when this node has no GPU or fewer GPUs than ranks on it. */
#include "check.h"
#include "collective_checks.h"
#include "nccl_check.h"

#include <errno.h>
#include <string.h>

static void *device_allocate(size_t bytes) {
  void *memory = NULL;
  CUDA_CHECK(cudaMalloc(&memory, bytes ? bytes : 1));
  return memory;
}
static void device_upload(void *memory, const void *host, size_t bytes) {
  CUDA_CHECK(cudaMemcpy(memory, host, bytes, cudaMemcpyHostToDevice));
}
static void device_download(void *host, const void *memory, size_t bytes) {
  CUDA_CHECK(cudaMemcpy(host, memory, bytes, cudaMemcpyDeviceToHost));
}
static void device_release(void *memory) {
  CUDA_CHECK(cudaFree(memory));
}

static const test_memory device_memory = {
    .allocate = device_allocate,
    .upload = device_upload,
    .download = device_download,
    .release = device_release,
};

/* A buffer on the GPU (NaNs at first) and its page-locked copy, filled with `fill` and uploaded
 * on a non-blocking stream of the caller's own, the stream the collective is ordered against. */
typedef struct stream_buffers {
  size_t count;
  float *device, *pinned;
  cudaStream_t stream;
} stream_buffers;

static stream_buffers stream_buffers_upload(collective *c, float fill) {
  stream_buffers b = {.count = (size_t)1 << 24};
  b.device = device_allocate(b.count * sizeof(float));
  CUDA_CHECK(cudaMallocHost((void **)&b.pinned, b.count * sizeof(float)));
  for (size_t i = 0; i < b.count; i++) b.pinned[i] = fill;
  CUDA_CHECK(cudaStreamCreateWithFlags(&b.stream, cudaStreamNonBlocking));
  collective_set_device_stream(c, b.stream);
  /* on b.stream: a non-blocking stream does not wait for the legacy default stream's work */
  CUDA_CHECK(cudaMemsetAsync(b.device, 0xFF, b.count * sizeof(float), b.stream));
  CUDA_CHECK(cudaMemcpyAsync(b.device, b.pinned, b.count * sizeof(float), cudaMemcpyHostToDevice,
                             b.stream));
  return b;
}

/* 0 when every element of b.pinned is `want`; frees b either way. */
static int expect_everywhere(collective *c, stream_buffers *b, float want, const char *after) {
  int failures = 0;
  for (size_t i = 0; i < b->count && !failures; i++)
    if (b->pinned[i] != want) {
      printf("rank %d: FAIL element %zu is %g after %s, expected %g\n", collective_rank(c), i,
             (double)b->pinned[i], after, (double)want);
      failures++;
    }
  collective_set_device_stream(c, NULL);
  CUDA_CHECK(cudaStreamDestroy(b->stream));
  CUDA_CHECK(cudaFreeHost(b->pinned));
  device_release(b->device);
  return failures;
}

/* A copy queued on the caller's own stream must land before the all-reduce reads the buffer;
 * the buffer starts as NaNs, so a reduction that ran first would show them. */
static int check_stream_ordering(collective *c) {
  stream_buffers b = stream_buffers_upload(c, 1.0f);
  collective_allreduce_sum(c, b.device, b.count);
  device_download(b.pinned, b.device, b.count * sizeof(float));
  return expect_everywhere(c, &b, (float)collective_size(c), "a copy on the caller's stream");
}

/* collective_wait does not block the host: it orders the caller's stream after the reduction.
 * A copy queued on that stream right after the wait must see the mean of the ranks' values
 * (rank + 1), not this rank's own; with one rank the two are equal, so only runs with two or
 * more ranks can catch a missing order. */
static int check_wait_orders_stream(collective *c) {
  stream_buffers b = stream_buffers_upload(c, (float)(collective_rank(c) + 1));
  collective_wait(c, collective_allreduce_mean_start(c, b.device, b.count));
  CUDA_CHECK(cudaMemcpyAsync(b.pinned, b.device, b.count * sizeof(float), cudaMemcpyDeviceToHost,
                             b.stream));
  CUDA_CHECK(cudaStreamSynchronize(b.stream));
  return expect_everywhere(c, &b, (float)(collective_size(c) + 1) / 2.0f,
                           "collective_wait and a copy on the caller's stream");
}

/* Two all-reduces started and waited for, as backward's buckets are. */
static void mean_two_buckets(collective *c, stream_buffers *b) {
  size_t half = b->count / 2;
  collective_request *first = collective_allreduce_mean_start(c, b->device + half, half);
  collective_request *second = collective_allreduce_mean_start(c, b->device, half);
  collective_wait(c, first);
  collective_wait(c, second);
}

/* The same recorded in a CUDA graph on the caller's stream (after one eager run, as a training
 * step is), then the graph replayed twice over new values uploaded before each replay: the
 * communication stream must join the capture and be joined back by the waits (else the capture
 * fails), and each replay must reduce the values there at the time. NCCL requires every rank to
 * capture and replay alike, as all do here. */
static int check_graph_capture(collective *c) {
  stream_buffers b = stream_buffers_upload(c, 1.0f);
  mean_two_buckets(c, &b);
  cudaGraph_t graph = NULL;
  cudaGraphExec_t exec = NULL;
  CUDA_CHECK(cudaStreamBeginCapture(b.stream, cudaStreamCaptureModeThreadLocal));
  mean_two_buckets(c, &b);
  CUDA_CHECK(cudaStreamEndCapture(b.stream, &graph));
  CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  CUDA_CHECK(cudaGraphDestroy(graph));
  int failures = 0;
  for (int replay = 1; replay <= 2; replay++) {
    for (size_t i = 0; i < b.count; i++) b.pinned[i] = (float)((collective_rank(c) + 1) * replay);
    CUDA_CHECK(cudaMemcpyAsync(b.device, b.pinned, b.count * sizeof(float), cudaMemcpyHostToDevice,
                               b.stream));
    CUDA_CHECK(cudaGraphLaunch(exec, b.stream));
    CUDA_CHECK(cudaMemcpyAsync(b.pinned, b.device, b.count * sizeof(float), cudaMemcpyDeviceToHost,
                               b.stream));
    CUDA_CHECK(cudaStreamSynchronize(b.stream));
    float want = (float)replay * (float)(collective_size(c) + 1) / 2.0f;
    if (replay == 2) failures += expect_everywhere(c, &b, want, "the second graph replay");
    for (size_t i = 0; replay == 1 && i < b.count; i++)
      if (b.pinned[i] != want) {
        printf("rank %d: FAIL element %zu is %g after the first graph replay, expected %g\n",
               collective_rank(c), i, (double)b.pinned[i], (double)want);
        failures++;
        break;
      }
  }
  CUDA_CHECK(cudaGraphExecDestroy(exec));
  return failures;
}

static long local_rank_count(void) {
  const char *text = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (!text) text = getenv("SLURM_NTASKS_PER_NODE");
  if (!text) return 1;
  char *end = NULL;
  errno = 0;
  long count = strtol(text, &end, 10);
  FP_CHECK(errno == 0 && *end == '\0' && count > 0, "ranks on this node '%s' is not a count", text);
  return count;
}

int main(int argc, char **argv) {
  FP_CHECK(argc == 2, "usage: test_collective_nccl RANKS (under mpirun -np RANKS)");
  int devices = 0;
  cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess || devices == 0) {
    printf("no usable GPU (%s): skipped\n",
           status != cudaSuccess ? cudaGetErrorString(status) : "0 devices");
    return 77;
  }
  if (local_rank_count() > devices) {
    printf("%ld ranks on this node but %d GPUs (one rank per GPU): skipped\n", local_rank_count(),
           devices);
    return 77;
  }
  collective *c = collective_init(COLLECTIVE_NCCL);
  int failures = check_world_size(c, argv[1]);
  if (strcmp(collective_name(c), "nccl") != 0) {
    printf("rank %d: FAIL name is '%s', expected 'nccl'\n", collective_rank(c), collective_name(c));
    failures++;
  }
  failures += run_collective_checks(c, &device_memory);
  failures += check_stream_ordering(c);
  failures += check_wait_orders_stream(c);
  failures += check_graph_capture(c);
  printf("rank %d of %d on GPU: %d failures\n", collective_rank(c), collective_size(c), failures);
  collective_destroy(c);
  return failures ? 1 : 0;
}
