/* CUDA backend: device graphs. The ops queued on cuda.stream between capture_begin and
 * capture_end are recorded (stream capture, this thread only) and instantiated as one
 * executable graph, replayed with a single launch: what removes the host's per-kernel launch
 * cost (hundreds of kernels and cuDNN calls a pass) once shapes are fixed. */
#include <stdio.h>
#include <stdlib.h>

#include "cuda_internal.h"

/* A recorded graph refers to the workspaces as they were: it is stale once one has moved. */
typedef struct cuda_graph {
  cudaGraphExec_t exec;
  unsigned workspace_generation;
} cuda_graph;

void cuda_not_capturing(const char *what) {
  FP_CHECK(!cuda.capturing,
           "CUDA graph capture: %s while recording a graph (a pass must run once eagerly "
           "before it is recorded, and record only queued device work)",
           what);
}

static void cuda_capture_begin(void) {
  FP_CHECK(!cuda.capturing, "CUDA graph capture: capture_begin while already recording");
  CUDA_CHECK(cudaStreamBeginCapture(cuda.stream, cudaStreamCaptureModeThreadLocal));
  cuda.capturing = 1;
}

static void *cuda_capture_end(char *why, size_t why_size) {
  FP_CHECK(cuda.capturing, "CUDA graph capture: capture_end without capture_begin");
  cuda.capturing = 0;
  cudaGraph_t graph = NULL;
  cudaError_t status = cudaStreamEndCapture(cuda.stream, &graph);
  if (status != cudaSuccess || !graph) {
    snprintf(why, why_size, "the capture failed: %s", cudaGetErrorString(status));
    (void)cudaGetLastError(); /* a failed capture is not sticky: clear it */
    if (graph) CUDA_CHECK(cudaGraphDestroy(graph));
    return NULL;
  }
  cudaGraphExec_t exec = NULL;
  status = cudaGraphInstantiate(&exec, graph, 0);
  CUDA_CHECK(cudaGraphDestroy(graph));
  if (status != cudaSuccess) {
    snprintf(why, why_size, "the graph could not be instantiated: %s", cudaGetErrorString(status));
    (void)cudaGetLastError();
    return NULL;
  }
  cuda_graph *recorded = fp_calloc(1, sizeof *recorded);
  *recorded = (cuda_graph){exec, cuda.workspace_generation};
  return recorded;
}

static int cuda_graph_current(const void *graph) {
  const cuda_graph *recorded = graph;
  return recorded->workspace_generation == cuda.workspace_generation;
}

static void cuda_graph_replay(void *graph) {
  cuda_not_capturing("a graph replay");
  FP_CHECK(cuda_graph_current(graph), "CUDA graph replay: the graph is stale (a workspace moved)");
  const cuda_graph *recorded = graph;
  CUDA_CHECK(cudaGraphLaunch(recorded->exec, cuda.stream));
}

static void cuda_graph_release(void *graph) {
  if (!graph) return;
  cuda_not_capturing("a graph release");
  cuda_graph *recorded = graph;
  CUDA_CHECK(cudaStreamSynchronize(cuda.stream)); /* a replay may still be queued */
  CUDA_CHECK(cudaGraphExecDestroy(recorded->exec));
  free(recorded);
}

void cuda_fill_graph_ops(backend *table) {
  table->capture_begin = cuda_capture_begin;
  table->capture_end = cuda_capture_end;
  table->graph_current = cuda_graph_current;
  table->graph_replay = cuda_graph_replay;
  table->graph_release = cuda_graph_release;
}
