/* What every rank of parse_catalog knows about its run (src/cmd/cmd_parse_catalog.c), and the
 * end of a run, when every chunk is done (catalog_finish.c): shards, master, previews, summary. */
#ifndef FP_CATALOG_RUN_H
#define FP_CATALOG_RUN_H

#include <stdint.h>

#include "catalog_chunk.h"
#include "catalog_job.h"
#include "checkpoint.h"
#include "manifest.h"

#define PATH_SIZE 4200

typedef struct options {
  const char *job_path;
  int preview, check;
  int override_count;
  char **overrides;
} options;

typedef struct run {
  catalog_job job;
  options opts;
  char config_text[65536];
  int rank, ranks;
  char manifest_path[PATH_SIZE], master_path[PATH_SIZE], parts[PATH_SIZE], shards[PATH_SIZE];
  checkpoint_info info;
  char **class_names;
  catalog *images;
  category_prior *prior;
  catalog_previous *previous;
  int reuse_previous;
  catalog_layout layout;
  unet *model;
  char runtime_text[400]; /* backend and precision, and why */
  uint64_t checkpoint_hash, result_fingerprint, job_fingerprint;
  int64_t chunk_count;
} run;

/* Per rank, for the summary. */
typedef struct rank_summary {
  int64_t chunks;
  chunk_counts counts;
  stage_seconds seconds;
  double merge, idle, busy;
} rank_summary;

/* out = directory/name; FP_FATAL if longer than PATH_SIZE. */
void catalog_run_join_path(char *out, const char *directory, const char *name);
void chunk_counts_add(chunk_counts *total, const chunk_counts *c);
/* Rank 0: removes every chunk's part file (they are in the shards once the master exists). */
void catalog_run_remove_parts(const run *r);
/* All ranks, every chunk done: merge the parts into shards, the master (rank 0), previews,
 * summary. */
void catalog_run_finish(run *r, manifest *m, const rank_summary *mine, double started);

#endif
