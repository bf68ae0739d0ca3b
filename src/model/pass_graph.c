#include "pass_graph.h"

#include <stdio.h>
#include <string.h>

#include "check.h"
#include "hash.h"

void pass_graph_init(pass_graph *g, const char *name, const unet *m, int enabled) {
  memset(g, 0, sizeof *g);
  g->name = name;
  const char *refusal = !enabled                ? "graphs turned off"
                        : !m->be->capture_begin ? "the backend has no device graphs"
                                                : NULL;
  if (refusal) {
    g->off = 1;
    snprintf(g->why, sizeof g->why, "%s", refusal);
  }
}

/* What this run of the pass does, agreed over the ranks: NCCL needs a captured collective to
 * be captured on every rank, and a graph holding one to be replayed on every rank. */
typedef enum pass_choice { PASS_EAGER, PASS_RECORD, PASS_REPLAY } pass_choice;

static int agreed(const unet *m, int value) {
  const unet_parallel *p = &m->parallel;
  return p->smallest_across_ranks ? p->smallest_across_ranks(p->ctx, value) : value;
}

/* Records the pass; a call the device refuses inside a recording stops the program (the check
 * that failed names it), with the setting that runs without recording. 0 when the device
 * refused the recording as a whole on any rank: every rank then runs eagerly from now on. */
static int record(unet *m, pass_graph *g, unet_pass pass, void *ctx) {
  const backend *be = m->be;
  char context[256];
  snprintf(context, sizeof context,
           "recording the %s as a device graph; to run without graphs: train.graphs=false, "
           "model.graphs=false (parse_catalog), bench --graphs 0",
           g->name);
  fp_set_fatal_context(context);
  be->capture_begin();
  pass(m, ctx);
  g->graph = be->capture_end(g->why, sizeof g->why);
  fp_set_fatal_context(NULL);
  FP_CHECK(!m->compute_params_stale,
           "%s: the pass marked the compute weights stale while being recorded: it must refresh "
           "them itself",
           g->name);
  if (agreed(m, g->graph != NULL)) return 1;
  if (g->graph) {
    be->graph_release(g->graph);
    g->graph = NULL;
    snprintf(g->why, sizeof g->why, "another rank's device refused the recording");
  }
  g->off = 1;
  fprintf(stderr, "warning: %s: no device graph, running eagerly (%s)\n", g->name, g->why);
  return 0;
}

void unet_run_pass(unet *m, pass_graph *g, uint64_t key, unet_pass pass, void *ctx) {
  const backend *be = m->be;
  if (g->off) {
    pass(m, ctx);
    return;
  }
  /* a host decision (the stale flag): made before the graph, never recorded in it */
  unet_refresh_compute_weights(m);
  /* the forward's own host decision: which presence the decoder is given (ground truth or the
   * class branch's) */
  uint64_t parts[2] = {key, (uint64_t)m->br.use_ground_truth};
  key = fnv1a64(parts, sizeof parts);
  /* replay a current graph of this key; record once the key has run eagerly (allocations,
   * workspace growth and algorithm searches done); else run eagerly */
  int same_key = g->warm && g->key == key;
  pass_choice choice = same_key && g->graph && be->graph_current(g->graph) ? PASS_REPLAY
                       : same_key && !g->graph                             ? PASS_RECORD
                                                                           : PASS_EAGER;
  choice = (pass_choice)agreed(m, choice);
  if (choice == PASS_REPLAY) {
    be->graph_replay(g->graph);
    return;
  }
  if (g->graph) { /* another key, stale (the backend's scratch moved), or another rank's is */
    be->graph_release(g->graph);
    g->graph = NULL;
  }
  if (choice == PASS_RECORD && record(m, g, pass, ctx)) {
    be->graph_replay(g->graph);
    return;
  }
  g->key = key;
  g->warm = 1;
  pass(m, ctx);
}

int pass_graph_active(const pass_graph *g) {
  return g->graph != NULL;
}

void pass_graph_release(pass_graph *g, const unet *m) {
  if (g->graph) m->be->graph_release(g->graph);
  g->graph = NULL;
}
