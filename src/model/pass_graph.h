/* A model pass run through a device graph (backend.h's capture ops) where it can be.
 *
 * A pass is a function that only queues backend ops on the model's buffers: no upload, no
 * download, no host decision on device values. unet_run_pass runs it eagerly the first time
 * for a key (allocations, workspace growth and cuDNN's algorithm searches happen then), records
 * it the second time and replays it from then on while the key stays the same. The key stands
 * for every host value the pass hands its ops (a loss scale, which layers are frozen): a new key
 * records it again; unet_run_pass adds the model's own (ground-truth injection on or off).
 * Inputs that change per batch are uploaded before the pass into buffers it reads (the input,
 * labels, branch targets, the dropout mask). Pointers stay valid between runs because the
 * model's buffers never move.
 *
 * With several ranks (the model's parallel hooks set), every rank makes the same choice each
 * time (eager, record or replay; the most cautious one any rank needs, over one small host
 * all-reduce), because NCCL requires a collective captured in a graph (the gradient buckets'
 * all-reduces, synchronized batch norm's means) to be captured and replayed on every rank.
 *
 * It runs eagerly, every time, where the backend has no graphs, the caller turned graphs off,
 * or the device refused the recording on any rank (said once on stderr). A call that fails
 * inside a recording stops the program like any failed call, its message followed by the
 * setting that runs without graphs. */
#ifndef FP_PASS_GRAPH_H
#define FP_PASS_GRAPH_H

#include <stdint.h>

#include "unet.h"

typedef struct pass_graph {
  const char *name; /* for messages: "inference batch", "training step" */
  void *graph;      /* the recorded pass, NULL until recorded */
  uint64_t key;     /* the key it was recorded with */
  int warm;         /* the pass ran eagerly with this key since the last graph was dropped */
  int off;          /* eager for good; why says why */
  char why[256];
} pass_graph;

typedef void (*unet_pass)(unet *m, void *ctx);

/* enabled: the caller's choice (e.g. bench --graphs 0 turns them off). */
void pass_graph_init(pass_graph *g, const char *name, const unet *m, int enabled);
void unet_run_pass(unet *m, pass_graph *g, uint64_t key, unet_pass pass, void *ctx);
/* 1 when the last unet_run_pass replayed or recorded a graph */
int pass_graph_active(const pass_graph *g);
void pass_graph_release(pass_graph *g, const unet *m);

#endif
