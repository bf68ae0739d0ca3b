#include "pass_graph.h"

#include <stdio.h>
#include <string.h>

#include "check.h"

/* What a recorded graph cannot hold: host work inside the pass. NULL when nothing. */
static const char *graph_refusal(const unet *m) {
  if (!m->be->capture_begin) return "the backend has no device graphs";
  if (m->br.mode != BRANCHES_NONE)
    return "the Extended U-Net's branches upload per batch (dropout masks, injected presence)";
  if (m->parallel.grads_ready) return "data-parallel training all-reduces during backward";
  return NULL;
}

void pass_graph_init(pass_graph *g, const char *name, const unet *m, int enabled) {
  memset(g, 0, sizeof *g);
  g->name = name;
  const char *refusal = enabled ? graph_refusal(m) : "graphs turned off";
  if (refusal) {
    g->off = 1;
    snprintf(g->why, sizeof g->why, "%s", refusal);
  }
}

void unet_run_pass(unet *m, pass_graph *g, uint64_t key, unet_pass pass, void *ctx) {
  const backend *be = m->be;
  if (g->off) {
    pass(m, ctx);
    return;
  }
  /* a host decision (the stale flag): made before the graph, never recorded in it */
  unet_refresh_compute_weights(m);
  if (g->graph && g->key == key && be->graph_replay(g->graph)) return;
  if (g->graph) { /* another key, or stale (the backend's scratch moved): run, record again */
    be->graph_release(g->graph);
    g->graph = NULL;
    g->warm = 0;
  }
  if (g->key != key || !g->warm) {
    g->key = key;
    g->warm = 1;
    pass(m, ctx);
    return;
  }
  /* A call the device refuses inside a recording stops the program (the check that failed names
   * it); the context says how to run without recording. */
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
  if (!g->graph) {
    g->off = 1;
    fprintf(stderr, "warning: %s: no device graph, running eagerly (%s)\n", g->name, g->why);
    pass(m, ctx);
    return;
  }
  FP_CHECK(be->graph_replay(g->graph), "%s: a graph just recorded is stale", g->name);
}

int pass_graph_active(const pass_graph *g) {
  return g->graph != NULL;
}

void pass_graph_release(pass_graph *g, const unet *m) {
  if (g->graph) m->be->graph_release(g->graph);
  g->graph = NULL;
}
