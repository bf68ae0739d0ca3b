/* CUDA backend: staged uploads (backend.h stage_input). The next batch's floats cross PCIe on a
 * copy stream of their own while cuda.stream still computes the current batch; events order the
 * two streams: a slot's copy waits for the conversion that read its previous contents
 * (`consumed`), and the conversion into a tensor waits for the copy (`copied`). */
#include "cuda_internal.h"

typedef struct cuda_stage {
  float *device; /* the slot's floats on the device, grow-only */
  size_t capacity;
  cudaEvent_t copied, consumed;
  int consumed_recorded; /* `consumed` marks a conversion: the next copy waits for it */
} cuda_stage;

static struct {
  cudaStream_t copy_stream;
  cuda_stage slots[BACKEND_STAGES];
  stage_state state[BACKEND_STAGES];
} staging;

static void staging_init(void) {
  if (staging.copy_stream) return;
  CUDA_CHECK(cudaStreamCreateWithFlags(&staging.copy_stream, cudaStreamNonBlocking));
  for (int s = 0; s < BACKEND_STAGES; s++) {
    CUDA_CHECK(cudaEventCreateWithFlags(&staging.slots[s].copied, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&staging.slots[s].consumed, cudaEventDisableTiming));
  }
}

/* The slot's device buffer holds at least `count` floats; a smaller one is freed once the
 * conversion that reads it has run. Not cuda_alloc_bytes: its zero fill is queued on
 * cuda.stream, which the copy stream does not wait for. */
static void reserve(cuda_stage *slot, size_t count) {
  if (slot->capacity >= count) return;
  if (slot->consumed_recorded) CUDA_CHECK(cudaEventSynchronize(slot->consumed));
  CUDA_CHECK(cudaFree(slot->device));
  slot->device = NULL;
  cudaError_t status = cudaMalloc((void **)&slot->device, count * sizeof(float));
  if (status != cudaSuccess)
    FP_FATAL("CUDA: out of device memory staging %zu floats on %s: %s", count, cuda.device_name,
             cudaGetErrorString(status));
  slot->capacity = count;
}

static void cuda_stage_input(int slot, const float *host_nchw, size_t count) {
  backend_stage_begin(staging.state, slot, count);
  cuda_not_capturing("a staged upload");
  staging_init();
  cuda_stage *s = &staging.slots[slot];
  reserve(s, count);
  if (s->consumed_recorded) CUDA_CHECK(cudaStreamWaitEvent(staging.copy_stream, s->consumed, 0));
  CUDA_CHECK(cudaMemcpyAsync(s->device, host_nchw, count * sizeof(float), cudaMemcpyHostToDevice,
                             staging.copy_stream));
  CUDA_CHECK(cudaEventRecord(s->copied, staging.copy_stream));
}

static void cuda_stage_wait(int slot) {
  FP_CHECK(slot >= 0 && slot < BACKEND_STAGES, "stage_wait: slot %d", slot);
  cuda_not_capturing("a wait for a staged upload");
  if (staging.copy_stream) CUDA_CHECK(cudaEventSynchronize(staging.slots[slot].copied));
}

static void cuda_tensor_from_staged(tensor *t, int slot) {
  cuda_not_capturing("a staged upload's conversion");
  FP_CHECK(t->dtype == FP_F32 || t->dtype == FP_BF16 || t->dtype == FP_F16,
           "the CUDA backend has no %s activations", fp_dtype_name(t->dtype));
  backend_stage_take(staging.state, slot, t);
  cuda_stage *s = &staging.slots[slot];
  CUDA_CHECK(cudaStreamWaitEvent(cuda.stream, s->copied, 0));
  cuk_nchw_f32_to_nhwc(t->data, (int)t->dtype, s->device, t->n, t->c, t->h, t->w, cuda.stream);
  CUDA_CHECK(cudaEventRecord(s->consumed, cuda.stream));
  s->consumed_recorded = 1;
}

void cuda_fill_staging_ops(backend *table) {
  table->stage_input = cuda_stage_input;
  table->stage_wait = cuda_stage_wait;
  table->tensor_from_staged = cuda_tensor_from_staged;
}
