/* parse_catalog job files: the same INI syntax as train's (jobs/README.md),
 * with this command's own keys (schema in catalog_job.c; `parse_catalog
 * --help` prints it, docs/parse_catalog.md explains it). */
#ifndef FP_CATALOG_JOB_H
#define FP_CATALOG_JOB_H

#include <stdint.h>
#include <stdio.h>

typedef struct catalog_job {
  /* [catalog] */
  char source[4096]; /* an HDF5 dataset from `ingest`, a directory of JPEGs or a list file */
  int64_t limit;     /* first N images only, 0 = all */
  /* [model] */
  char checkpoint[4096];
  int classes, height, width; /* what the job expects of the checkpoint; 0 = whatever it has */
  int batch, threads;
  char backend[16], precision[16]; /* model.backend, model.precision (runtime.h) */
  int graphs;                      /* model.graphs (bool) */
  /* [output] */
  char dir[4096];
  char job_id[256];
  int source_masks; /* bool */
  int source_max_height, source_max_width;
  int zstd_level;
  /* [schedule] */
  char mode[16]; /* dynamic|static */
  int chunk;
  double progress_seconds;
  /* [prior] */
  char prior_table[4096], prior_csv[4096];
  int prior_inject; /* ground-truth injection of the allowed classes */
  /* [nightly] */
  char previous[4096];
} catalog_job;

void catalog_job_defaults(catalog_job *job);
/* Loads path, applies the overrides (section.key=value), then checks the
 * fields together (required keys, multiples of 32, prior files in pairs).
 * Exits 1 with a message naming the file, line and key on any error. */
void catalog_job_load(catalog_job *job, const char *path, int override_count, char **overrides);
/* The resolved job as INI text (every key); returns its length. */
size_t catalog_job_to_ini(const catalog_job *job, char *buf, size_t cap);
void catalog_job_print_help(FILE *out);

#endif
