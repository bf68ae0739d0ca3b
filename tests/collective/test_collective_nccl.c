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
static void device_release(void *memory) { CUDA_CHECK(cudaFree(memory)); }

static const test_memory device_memory = {
    .allocate = device_allocate,
    .upload = device_upload,
    .download = device_download,
    .release = device_release,
};

/* A copy queued on the caller's own stream must land before the all-reduce reads the buffer;
 * the buffer starts as NaNs, so a reduction that ran first would show them. */
static int check_stream_ordering(collective *c) {
  const size_t count = (size_t)1 << 24;
  float *device = device_allocate(count * sizeof(float));
  CUDA_CHECK(cudaMemset(device, 0xFF, count * sizeof(float)));
  float *pinned = NULL;
  CUDA_CHECK(cudaMallocHost((void **)&pinned, count * sizeof(float)));
  for (size_t i = 0; i < count; i++) pinned[i] = 1.0f;
  cudaStream_t stream;
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  collective_set_device_stream(c, stream);
  CUDA_CHECK(cudaMemcpyAsync(device, pinned, count * sizeof(float), cudaMemcpyHostToDevice,
                             stream));
  collective_allreduce_sum(c, device, count);
  device_download(pinned, device, count * sizeof(float));
  int failures = 0;
  for (size_t i = 0; i < count && !failures; i++)
    if (pinned[i] != (float)collective_size(c)) {
      printf("rank %d: FAIL element %zu is %g after a copy on the caller's stream, expected %d\n",
             collective_rank(c), i, (double)pinned[i], collective_size(c));
      failures++;
    }
  collective_set_device_stream(c, NULL);
  CUDA_CHECK(cudaStreamDestroy(stream));
  CUDA_CHECK(cudaFreeHost(pinned));
  device_release(device);
  return failures;
}

/* collective_wait does not block the host: it orders the caller's stream after the reduction.
 * A copy queued on that (non-blocking) stream right after the wait must see the mean of the
 * ranks' values (rank + 1), not this rank's own; with one rank the two are equal, so only runs
 * with two or more ranks can catch a missing order. */
static int check_wait_orders_stream(collective *c) {
  const size_t count = (size_t)1 << 24;
  float *device = device_allocate(count * sizeof(float));
  float *pinned = NULL;
  CUDA_CHECK(cudaMallocHost((void **)&pinned, count * sizeof(float)));
  for (size_t i = 0; i < count; i++) pinned[i] = (float)(collective_rank(c) + 1);
  cudaStream_t stream;
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  collective_set_device_stream(c, stream);
  CUDA_CHECK(cudaMemcpyAsync(device, pinned, count * sizeof(float), cudaMemcpyHostToDevice,
                             stream));
  collective_request *request = collective_allreduce_mean_start(c, device, count);
  collective_wait(c, request);
  CUDA_CHECK(cudaMemcpyAsync(pinned, device, count * sizeof(float), cudaMemcpyDeviceToHost,
                             stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  const float mean = (float)(collective_size(c) + 1) / 2.0f;
  int failures = 0;
  for (size_t i = 0; i < count && !failures; i++)
    if (pinned[i] != mean) {
      printf("rank %d: FAIL element %zu is %g after collective_wait on the caller's stream, "
             "expected the mean %g\n",
             collective_rank(c), i, (double)pinned[i], (double)mean);
      failures++;
    }
  collective_set_device_stream(c, NULL);
  CUDA_CHECK(cudaStreamDestroy(stream));
  CUDA_CHECK(cudaFreeHost(pinned));
  device_release(device);
  return failures;
}

static long local_rank_count(void) {
  const char *text = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (!text) text = getenv("SLURM_NTASKS_PER_NODE");
  if (!text) return 1;
  char *end = NULL;
  errno = 0;
  long count = strtol(text, &end, 10);
  FP_CHECK(errno == 0 && *end == '\0' && count > 0, "ranks on this node '%s' is not a count",
           text);
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
    printf("rank %d: FAIL name is '%s', expected 'nccl'\n", collective_rank(c),
           collective_name(c));
    failures++;
  }
  failures += run_collective_checks(c, &device_memory);
  failures += check_stream_ordering(c);
  failures += check_wait_orders_stream(c);
  printf("rank %d of %d on GPU: %d failures\n", collective_rank(c), collective_size(c), failures);
  collective_destroy(c);
  return failures ? 1 : 0;
}
