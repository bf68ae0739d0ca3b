/* The CUDA emulator's streams, events and graphs. Work queued on a stream is kept in that
 * stream's queue and runs only when something waits for it: a synchronisation of the stream,
 * of an event recorded after it, of the device, a copy to or from pageable host memory (which
 * CUDA makes synchronous), or a frees (CUDA's cudaFree and cudaFreeHost synchronise). So every
 * stream runs as late as its ordering allows: a host buffer changed before the copy that reads
 * it has been waited for, a result read before its event, or a stream that reads what another
 * writes without an event between them, gives wrong numbers here as it may on a GPU. A stream
 * that records a graph keeps its work in the graph instead; a graph launch queues all of it.
 * Another stream joins a capture by waiting for an event recorded inside it, and adds its work
 * to the same graph, in the order it is queued (a valid order of the captured dependencies);
 * the capture ends only when every joined stream has been waited for again from inside it, as
 * CUDA requires. */
#include <deque>
#include <memory>
#include <set>
#include <vector>

#include "emulator_internal.h"

/* the recorded work, shared by a graph and its executable graphs (never changed once recorded) */
struct emu_graph {
  std::shared_ptr<std::vector<std::function<void()>>> ops;
};

/* One queued item: work, or a wait for another stream's first `position` items. */
struct pending {
  std::function<void()> op;
  CUstream_st *waits_for;
  unsigned long long position;
};

struct CUstream_st {
  emu_graph *recording;           /* the graph being captured on this stream, or NULL */
  unsigned long long capture;     /* that capture's number, 0 when none */
  unsigned long long capture_ops; /* what this stream added to it (joining it counts as one) */
  unsigned long long joined_ops;  /* how many of those another stream of the capture waited for */
  std::deque<pending> queue;
  unsigned long long queued, executed; /* items ever queued, and run */
};

struct CUevent_st {
  CUstream_st *stream; /* where it was last recorded, or NULL */
  unsigned long long position;
  unsigned long long capture, capture_ops; /* recorded inside that capture, after those ops */
};

namespace {

CUstream_st legacy_stream;
std::set<CUstream_st *> streams = {&legacy_stream};
int capturing_streams;
unsigned long long captures_begun;

CUstream_st *stream_of(cudaStream_t s) {
  return s ? s : &legacy_stream;
}

/* runs the stream's items until `position` of them have run */
void run_until(CUstream_st *s, unsigned long long position) {
  while (s->executed < position) {
    pending item = std::move(s->queue.front());
    s->queue.pop_front();
    s->executed++;
    if (item.waits_for)
      run_until(item.waits_for, item.position);
    else
      item.op();
  }
}

void push(CUstream_st *s, pending item) {
  s->queue.push_back(std::move(item));
  s->queued++;
}

/* s waits for an event recorded inside a capture: s joins it (if it was not in it), and the
 * recording stream's work up to the event counts as waited for */
void join_capture(CUstream_st *s, const CUevent_st *event) {
  CUstream_st *from = event->stream;
  if (from->capture != event->capture)
    emu::fatal("cudaStreamWaitEvent: the event was recorded in a capture that has ended");
  if (s->recording && s->capture != event->capture)
    emu::fatal("cudaStreamWaitEvent: joins two captures");
  if (!s->recording) {
    s->recording = from->recording;
    s->capture = event->capture;
    s->capture_ops = 1;
    s->joined_ops = 0;
    capturing_streams++;
  }
  if (from != s && event->capture_ops > from->joined_ops) from->joined_ops = event->capture_ops;
}

void leave_capture(CUstream_st *s) {
  s->recording = nullptr;
  s->capture = s->capture_ops = s->joined_ops = 0;
  capturing_streams--;
}

} // namespace

namespace emu {

void queue(cudaStream_t stream, std::function<void()> op) {
  std::lock_guard<std::recursive_mutex> guard(device_lock());
  CUstream_st *s = stream_of(stream);
  if (s->recording) {
    s->recording->ops->push_back(std::move(op));
    s->capture_ops++;
  } else
    push(s, pending{std::move(op), nullptr, 0});
}

bool recording(cudaStream_t stream) {
  return stream_of(stream)->recording != nullptr;
}

bool capturing() {
  return capturing_streams > 0;
}

void synchronize(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(device_lock());
  CUstream_st *s = stream_of(stream);
  run_until(s, s->queued);
}

void synchronize_device() {
  std::lock_guard<std::recursive_mutex> guard(device_lock());
  for (CUstream_st *s : streams) run_until(s, s->queued);
}

} // namespace emu

extern "C" {

cudaError_t cudaDeviceSynchronize(void) {
  emu::refused_while_capturing("cudaDeviceSynchronize");
  emu::synchronize_device();
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags) {
  (void)flags;
  std::lock_guard<std::recursive_mutex> guard(emu::device_lock());
  *stream = new CUstream_st{};
  streams.insert(*stream);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(emu::device_lock());
  emu::synchronize(stream); /* CUDA finishes a destroyed stream's work */
  streams.erase(stream);
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  emu::refused_while_capturing("cudaStreamSynchronize");
  emu::synchronize(stream);
  return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags) {
  (void)flags;
  std::lock_guard<std::recursive_mutex> guard(emu::device_lock());
  CUstream_st *s = stream_of(stream);
  if (event->capture) {
    join_capture(s, event);
    return cudaSuccess;
  }
  if (s->recording)
    emu::fatal("cudaStreamWaitEvent: a stream recording a graph waits for an event recorded "
               "outside the capture (CUDA refuses it)");
  if (event->stream) push(s, pending{nullptr, event->stream, event->position});
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned flags) {
  (void)flags;
  *event = new CUevent_st{nullptr, 0, 0, 0};
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(emu::device_lock());
  CUstream_st *s = stream_of(stream);
  if (s->recording)
    *event = CUevent_st{s, 0, s->capture, s->capture_ops};
  else
    *event = CUevent_st{s, s->queued, 0, 0};
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  emu::refused_while_capturing("cudaEventSynchronize");
  std::lock_guard<std::recursive_mutex> guard(emu::device_lock());
  if (event->capture) emu::fatal("cudaEventSynchronize on an event recorded in a capture");
  if (event->stream) run_until(event->stream, event->position);
  return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  std::lock_guard<std::recursive_mutex> guard(emu::device_lock());
  CUstream_st *s = stream_of(stream);
  if (s == &legacy_stream || s->recording)
    return emu::fail(cudaErrorIllegalState, "cudaStreamBeginCapture: legacy stream or recording");
  if (mode != cudaStreamCaptureModeThreadLocal)
    emu::fatal("cudaStreamBeginCapture: only the thread-local mode is emulated");
  s->recording = new emu_graph{std::make_shared<std::vector<std::function<void()>>>()};
  s->capture = ++captures_begun;
  s->capture_ops = s->joined_ops = 0;
  capturing_streams++;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph) {
  std::lock_guard<std::recursive_mutex> guard(emu::device_lock());
  CUstream_st *s = stream_of(stream);
  if (!s->recording) return emu::fail(cudaErrorIllegalState, "cudaStreamEndCapture: not recording");
  bool unjoined = false;
  for (CUstream_st *joined : streams)
    if (joined != s && joined->capture == s->capture) {
      unjoined |= joined->joined_ops != joined->capture_ops;
      leave_capture(joined);
    }
  emu_graph *recorded = s->recording;
  leave_capture(s);
  if (unjoined) {
    delete recorded;
    *graph = nullptr;
    return emu::fail(cudaErrorStreamCaptureUnjoined,
                     "cudaStreamEndCapture: a stream joined the capture and was not waited for");
  }
  *graph = recorded;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                 unsigned long long flags) {
  (void)flags;
  *exec = new emu_graph(*graph);
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

/* CUDA lets an executable graph be destroyed while a launch of it is queued: the launch holds
 * the recorded work too */
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> guard(emu::device_lock());
  if (emu::recording(stream)) emu::fatal("cudaGraphLaunch into a recording stream");
  std::shared_ptr<std::vector<std::function<void()>>> ops = exec->ops;
  emu::queue(stream, [ops]() {
    for (const auto &op : *ops) op();
  });
  return cudaSuccess;
}

} /* extern "C" */
