/* parse_catalog JOBFILE [--preview K] [--check] [section.key=value ...]
 *
 * Offline inference over a catalog under mpirun: the catalog is cut into
 * chunks that rank 0 hands out on demand (scheduler/work_queue.h); each rank
 * writes one part file per chunk (src/catalog_chunk.h) and rank 0 records it
 * in the manifest (scheduler/manifest.h), so a rerun does only the missing
 * chunks. When every chunk is done, each rank merges a contiguous range of
 * parts into its shard file and rank 0 writes the master file with virtual
 * datasets over the shards (io/catalog/catalog_master.h). docs/parse_catalog.md has
 * the whole story. */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catalog_chunk.h"
#include "catalog_files.h"
#include "catalog_job.h"
#include "catalog_master.h"
#include "catalog_preview.h"
#include "catalog_run.h"
#include "check.h"
#include "checkpoint.h"
#include "collective.h"
#include "h5_tensors.h"
#include "hash.h"
#include "manifest.h"
#include "mpi_check.h"
#include "output_lock.h"
#include "png_io.h"
#include "progress.h"
#include "runtime.h"
#include "work_queue.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: parse_catalog JOBFILE [--preview K] [--check] [section.key=value ...]\n"
          "       mpirun -np N parse_catalog JOBFILE ...\n"
          "Parses every image of a catalog with a trained checkpoint and writes, under\n"
          "output.dir, master.h5: per image the mask (zstd, one chunk per image), per image\n"
          "and class the pixel fraction, bounding box, mean confidence and mean colour, the\n"
          "images that failed and why (docs/parse_catalog.md). Chunks of schedule.chunk\n"
          "images are handed out to the ranks on demand; finished chunks are recorded in\n"
          "output.dir/manifest, so rerunning the same command after a crash does only what\n"
          "is missing. With nightly.previous, images whose id and content hash are in the\n"
          "previous run are copied, not recomputed.\n"
          "  --preview K  also write K overlay PNGs and a contact sheet to output.dir/preview\n"
          "  --check      check the job file and the overrides, print the resolved job, exit\n"
          "Exit status: 0 done, 1 error (nothing incomplete is left under a final name),\n"
          "2 bad usage.\n\n"
          "Job-file keys:\n");
  catalog_job_print_help(out);
}

static options parse_arguments(int argc, char **argv) {
  options o = {NULL, 0, 0, 0, NULL};
  if (argc >= 2 && !strcmp(argv[1], "--help")) {
    usage(stdout);
    exit(0);
  }
  if (argc < 2 || argv[1][0] == '-') {
    usage(stderr);
    exit(2);
  }
  o.job_path = argv[1];
  o.overrides = fp_calloc((size_t)argc, sizeof *o.overrides);
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--help")) {
      usage(stdout);
      exit(0);
    } else if (!strcmp(argv[i], "--check")) {
      o.check = 1;
    } else if (!strcmp(argv[i], "--preview")) {
      char *end = NULL;
      long k = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : -1;
      if (i + 1 >= argc || *end || k < 0 || k > 10000) {
        fprintf(stderr, "error: --preview needs a count 0..10000\n");
        usage(stderr);
        exit(2);
      }
      o.preview = (int)k;
      i++;
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "error: unknown option %s\n", argv[i]);
      usage(stderr);
      exit(2);
    } else {
      o.overrides[o.override_count++] = argv[i];
    }
  }
  return o;
}

/* ---- what every rank knows ---- */

/* The checkpoint's class_names attribute (written by train). */
static char **read_class_names(const char *path, int classes) {
  hid_t file = h5_open_read(path);
  htri_t exists = H5Aexists(file, "class_names");
  FP_CHECK(exists > 0, "%s: the checkpoint has no class_names attribute", path);
  hid_t attribute = H5Aopen(file, "class_names", H5P_DEFAULT);
  H5_CHECK(attribute);
  hid_t space = H5Aget_space(attribute);
  H5_CHECK(space);
  FP_CHECK(H5Sget_simple_extent_npoints(space) == classes,
           "%s: attribute class_names has %lld names but attribute classes is %d", path,
           (long long)H5Sget_simple_extent_npoints(space), classes);
  hid_t type = H5Tcopy(H5T_C_S1);
  H5_CHECK(type);
  H5_CHECK(H5Tset_size(type, H5T_VARIABLE));
  H5_CHECK(H5Tset_cset(type, H5T_CSET_UTF8));
  char **names = fp_calloc((size_t)classes, sizeof *names);
  H5_CHECK(H5Aread(attribute, type, names));
  char **copies = fp_calloc((size_t)classes, sizeof *copies);
  for (int k = 0; k < classes; k++) {
    copies[k] = strdup(names[k] ? names[k] : "");
    FP_CHECK(copies[k], "out of memory");
  }
  H5_CHECK(H5Dvlen_reclaim(type, space, H5P_DEFAULT, names));
  free(names);
  H5Tclose(type);
  H5Sclose(space);
  H5Aclose(attribute);
  H5Fclose(file);
  return copies;
}

/* Refuses, at start, a checkpoint that does not fit the job or the catalog. */
static void check_checkpoint_fits(const run *r) {
  const catalog_job *j = &r->job;
  const checkpoint_info *info = &r->info;
  if (j->classes && j->classes != info->classes)
    FP_FATAL("checkpoint %s has %d classes (attribute classes) but the job expects "
             "model.classes = %d",
             j->checkpoint, info->classes, j->classes);
  if (j->height && j->height != info->height)
    FP_FATAL("checkpoint %s was trained at %dx%d (attributes height, width) but the job expects "
             "model.height = %d",
             j->checkpoint, info->height, info->width, j->height);
  if (j->width && j->width != info->width)
    FP_FATAL("checkpoint %s was trained at %dx%d (attributes height, width) but the job expects "
             "model.width = %d",
             j->checkpoint, info->height, info->width, j->width);
  if (catalog_kind_of(r->images) == CATALOG_HDF5 &&
      (catalog_stored_height(r->images) != info->height ||
       catalog_stored_width(r->images) != info->width))
    FP_FATAL("catalog %s holds %dx%d images but checkpoint %s was trained at %dx%d; ingest the "
             "catalog at the model's size",
             j->source, catalog_stored_height(r->images), catalog_stored_width(r->images),
             j->checkpoint, info->height, info->width);
}

static uint64_t hash_words(const uint64_t *words, size_t count) {
  return fnv1a64(words, count * sizeof *words);
}

/* FNV-1a 64 over the loaded parameters and BN statistics. */
static uint64_t model_hash(const unet *m) {
  size_t counts[2] = {m->param_list.total, m->buffer_list.total};
  const float *data[2] = {m->params, m->buffers};
  uint64_t hash = FNV1A64_START;
  for (int i = 0; i < 2; i++) {
    float *host = fp_malloc(counts[i] * sizeof *host);
    m->be->download(host, data[i], FP_F32, counts[i]);
    hash = fnv1a64_update(hash, host, counts[i] * sizeof *host);
    free(host);
  }
  return hash;
}

/* Broadcasts a buffer of any size (MPI counts are int). */
static void broadcast_bytes(void *data, size_t bytes) {
  for (size_t sent = 0; sent < bytes;) {
    int piece = bytes - sent > (1u << 30) ? 1 << 30 : (int)(bytes - sent);
    MPI_CHECK(MPI_Bcast((char *)data + sent, piece, MPI_BYTE, 0, MPI_COMM_WORLD));
    sent += (size_t)piece;
  }
}

/* Rank 0's catalog to every rank, straight from and into the catalogs' arrays. */
static void broadcast_catalog(run *r) {
  catalog_transfer t = r->rank == 0 ? catalog_transfer_send(r->images) : catalog_transfer_receive();
  broadcast_bytes(t.data[0], t.bytes[0]);
  if (r->rank != 0) catalog_transfer_allocate(&t);
  for (int part = 1; part < t.count; part++) broadcast_bytes(t.data[part], t.bytes[part]);
  catalog *received = catalog_transfer_finish(&t);
  if (r->rank != 0) r->images = received;
}

/* Rank 0: the output directories and the lock that keeps a second run out. */
static void open_output(run *r, int *lock_fd) {
  catalog_make_directory(r->job.dir, "output directory (output.dir)");
  catalog_make_directory(r->parts, "output directory");
  catalog_make_directory(r->shards, "output directory");
  char lock_path[PATH_SIZE], what[PATH_SIZE + 16];
  catalog_run_join_path(lock_path, r->job.dir, "lock");
  snprintf(what, sizeof what, "output.dir %s", r->job.dir);
  *lock_fd = output_lock_take(lock_path, what, "parse_catalog");
}

static void setup(run *r, int *lock_fd) {
  catalog_job *j = &r->job;
  catalog_run_join_path(r->manifest_path, j->dir, "manifest");
  catalog_run_join_path(r->master_path, j->dir, "master.h5");
  catalog_run_join_path(r->parts, j->dir, "parts");
  catalog_run_join_path(r->shards, j->dir, "shards");
  /* Rank 0 checks the checkpoint against the job and the catalog first, so that a refusal is
   * one message; the other ranks wait (and are ended by mpirun if it fails). */
  if (r->rank == 0) {
    r->info = checkpoint_peek(j->checkpoint);
    r->images = catalog_open(j->source, j->limit);
    check_checkpoint_fits(r);
  }
  MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
  if (r->rank != 0) r->info = checkpoint_peek(j->checkpoint);
  broadcast_catalog(r);
  r->class_names = read_class_names(j->checkpoint, r->info.classes);
  if (j->prior_table[0])
    r->prior = category_prior_load(j->prior_table, j->prior_csv, r->class_names, r->info.classes);
  r->layout =
      (catalog_layout){r->info.height,       r->info.width,       r->info.classes, j->source_masks,
                       j->source_max_height, j->source_max_width, j->zstd_level};
  runtime rt = runtime_open(j->backend, j->precision, r->opts.job_path, 0);
  runtime_describe(&rt, r->runtime_text, sizeof r->runtime_text);
  unet_config model_config = {.arch = r->info.arch,
                              .classes = r->info.classes,
                              .batch = j->batch,
                              .height = r->info.height,
                              .width = r->info.width,
                              .compute = rt.compute,
                              .mode = UNET_INFERENCE,
                              .branches = r->info.branches};
  r->model = unet_create(rt.be, &model_config, 0);
  checkpoint_load(j->checkpoint, r->model, NULL, NULL);
  FP_CHECK(!j->prior_inject || r->info.branches.mode == BRANCHES_INJECTED,
           "%s: prior.inject needs a checkpoint whose branches are injected; %s has branches "
           "'%s' (attribute 'branches')",
           r->opts.job_path, j->checkpoint, branch_mode_name(r->info.branches.mode));
  r->checkpoint_hash = model_hash(r->model);
  uint64_t result_words[] = {r->checkpoint_hash,
                             r->prior ? category_prior_table_hash(r->prior) : 0,
                             (uint64_t)r->layout.height,
                             (uint64_t)r->layout.width,
                             (uint64_t)r->layout.classes,
                             (uint64_t)r->layout.source_masks,
                             (uint64_t)r->layout.source_height,
                             (uint64_t)r->layout.source_width,
                             (uint64_t)r->layout.zstd_level,
                             (uint64_t)j->batch,
                             (uint64_t)rt.compute,
                             (uint64_t)j->prior_inject};
  r->result_fingerprint = hash_words(result_words, sizeof result_words / sizeof result_words[0]);
  uint64_t previous_fingerprint = 0;
  if (j->previous[0]) {
    r->previous = catalog_previous_open(j->previous);
    previous_fingerprint = catalog_previous_result_fingerprint(r->previous);
    r->reuse_previous = previous_fingerprint == r->result_fingerprint &&
                        !memcmp(catalog_previous_layout(r->previous), &r->layout, sizeof r->layout);
  }
  uint64_t job_words[] = {r->result_fingerprint,
                          catalog_listing_hash(r->images),
                          (uint64_t)catalog_count(r->images),
                          (uint64_t)j->chunk,
                          r->prior ? category_prior_csv_hash(r->prior) : 0,
                          fnv1a64(j->previous, strlen(j->previous)),
                          previous_fingerprint};
  r->job_fingerprint = hash_words(job_words, sizeof job_words / sizeof job_words[0]);
  r->chunk_count = (catalog_count(r->images) + j->chunk - 1) / j->chunk;
  /* Only once everything checked out: nothing is created for a job refused at start. */
  if (r->rank == 0) open_output(r, lock_fd);
}

/* ---- rank 0 during the work: reports in, manifest and progress out ---- */

typedef struct chunk_report {
  int64_t chunk;
  chunk_counts counts;
  double seconds;      /* on this chunk */
  int64_t rank_images; /* images the rank finished so far in this run */
  double rank_seconds; /* its working time so far */
} chunk_report;

typedef struct coordinator {
  const run *r;
  manifest *m;
  progress prog;
  double last_print;
  int64_t chunks_to_do, chunks_done;
  int64_t *rank_images;
  double *rank_seconds;
} coordinator;

static void print_progress(coordinator *c) {
  int slowest = -1;
  double slowest_rate = INFINITY;
  for (int k = 0; k < c->r->ranks; k++) {
    if (c->rank_seconds[k] <= 0) continue;
    double rate = (double)c->rank_images[k] / c->rank_seconds[k];
    if (rate < slowest_rate) {
      slowest_rate = rate;
      slowest = k;
    }
  }
  if (slowest >= 0)
    progress_print(&c->prog, "chunks %lld/%lld, slowest rank %d at %.2f img/s",
                   (long long)c->chunks_done, (long long)c->chunks_to_do, slowest, slowest_rate);
  else
    progress_print(&c->prog, "chunks %lld/%lld", (long long)c->chunks_done,
                   (long long)c->chunks_to_do);
  c->last_print = progress_now();
}

static void chunk_done(void *context, int rank, const void *report_bytes) {
  coordinator *c = context;
  chunk_report report;
  memcpy(&report, report_bytes, sizeof report);
  manifest_chunk record = {1,
                           rank,
                           report.counts.ok,
                           report.counts.failed,
                           report.counts.new_images,
                           report.counts.changed,
                           report.counts.unchanged,
                           report.seconds};
  manifest_record(c->m, report.chunk, &record);
  progress_advance(&c->prog, (long)(report.counts.ok + report.counts.failed));
  c->chunks_done++;
  c->rank_images[rank] = report.rank_images;
  c->rank_seconds[rank] = report.rank_seconds;
  if (progress_now() - c->last_print >= c->r->job.progress_seconds ||
      c->chunks_done == c->chunks_to_do)
    print_progress(c);
}

/* Every rank: take chunks until there are none left. */
static void work(run *r, coordinator *c, const int64_t *todo, int64_t todo_count,
                 rank_summary *summary) {
  chunk_setup s = {.images = r->images,
                   .layout = r->layout,
                   .chunk_size = r->job.chunk,
                   .prior = r->prior,
                   .inject_prior = r->job.prior_inject,
                   .previous = r->previous,
                   .reuse_previous = r->reuse_previous,
                   .parts_directory = r->parts,
                   .graphs = r->job.graphs};
  chunk_engine *engine = chunk_engine_create(&s, r->model);
  work_queue *q =
      work_queue_start(MPI_COMM_WORLD, strcmp(r->job.mode, "static") ? WORK_DYNAMIC : WORK_STATIC,
                       todo, todo_count, sizeof(chunk_report), chunk_done, c);
  chunk_report report;
  const void *finished = NULL;
  int64_t images = 0;
  double waiting_since = progress_now();
  for (int64_t chunk; (chunk = work_queue_next(q, finished)) >= 0;) {
    double start = progress_now();
    summary->idle += start - waiting_since;
    chunk_counts counts = chunk_engine_run(engine, chunk, &summary->seconds);
    double seconds = progress_now() - start;
    images += counts.ok + counts.failed;
    summary->busy += seconds;
    summary->chunks++;
    chunk_counts_add(&summary->counts, &counts);
    report = (chunk_report){chunk, counts, seconds, images, summary->busy};
    finished = &report;
    waiting_since = progress_now();
  }
  summary->idle += progress_now() - waiting_since;
  work_queue_finish(q);
  chunk_engine_free(engine);
}

/* Rank 0: the chunks to do (not in the manifest, or listed but without their
 * part file), after clearing what a killed run left. */
static int64_t *plan(run *r, manifest *m, int64_t *todo_count) {
  int removed = catalog_remove_temporaries(r->parts) + catalog_remove_temporaries(r->shards) +
                catalog_remove_temporaries(r->job.dir);
  int64_t *todo = fp_calloc((size_t)r->chunk_count, sizeof *todo);
  int64_t count = 0, missing = 0;
  for (int64_t c = 0; c < r->chunk_count; c++) {
    if (manifest_chunk_at(m, c)->done) {
      char part[PATH_SIZE];
      catalog_part_path(r->parts, c, part, sizeof part);
      if (access(part, F_OK) == 0) continue;
      manifest_forget(m, c);
      missing++;
    }
    todo[count++] = c;
  }
  if (removed || manifest_done_count(m) || missing)
    printf("resuming %s: %lld of %lld chunks done before, %lld to do (%d temporary files of a "
           "stopped run removed%s)\n",
           r->job.dir, (long long)manifest_done_count(m), (long long)r->chunk_count,
           (long long)count, removed, missing ? ", some listed parts were missing" : "");
  *todo_count = count;
  return todo;
}

int main(int argc, char **argv) {
  run r;
  memset(&r, 0, sizeof r);
  r.opts = parse_arguments(argc, argv);
  catalog_job_defaults(&r.job);
  catalog_job_load(&r.job, r.opts.job_path, r.opts.override_count, r.opts.overrides);
  catalog_job_to_ini(&r.job, r.config_text, sizeof r.config_text);
  if (r.opts.check) {
    printf("%s", r.config_text);
    return 0;
  }
  /* A failed write (full disk, EFBIG) ends the run through FP_FATAL's exit(1); HDF5's own exit
   * handler would then try to flush the half-written file again and crash (HDF5 1.10). The
   * temporary file is removed by catalog_files' handler instead. */
  H5_CHECK(H5dont_atexit());
  /* A write beyond a file-size limit fails with EFBIG and ends cleanly instead of killing. */
  FP_CHECK(signal(SIGXFSZ, SIG_IGN) != SIG_ERR, "signal(SIGXFSZ) failed");
  int provided;
  MPI_CHECK(MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided));
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &r.rank));
  MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &r.ranks));
  /* a rank that fails must not leave the others waiting in the work queue */
  collective_abort_job_on_fatal();
  if (r.job.threads > 0) omp_set_num_threads(r.job.threads);
  int lock_fd = -1;
  setup(&r, &lock_fd);

  manifest *m = NULL;
  int64_t *todo = NULL, todo_count = 0;
  int complete = 0;
  if (r.rank == 0) {
    char header[256];
    snprintf(header, sizeof header,
             "parse_catalog manifest 1 job=%016llx images=%lld chunk=%d chunks=%lld",
             (unsigned long long)r.job_fingerprint, (long long)catalog_count(r.images), r.job.chunk,
             (long long)r.chunk_count);
    m = manifest_open(r.manifest_path, header, r.chunk_count);
    complete = access(r.master_path, F_OK) == 0;
    if (complete) {
      FP_CHECK(manifest_done_count(m) == r.chunk_count,
               "%s exists but the manifest %s lists %lld of %lld chunks", r.master_path,
               r.manifest_path, (long long)manifest_done_count(m), (long long)r.chunk_count);
      catalog_run_remove_parts(
          &r); /* if a run stopped between writing the master and removing them */
      printf("%s is complete already: nothing to do\n", r.master_path);
    } else {
      todo = plan(&r, m, &todo_count);
      printf("parse_catalog: %s\n", r.runtime_text);
      printf("parse_catalog: %lld images in %lld chunks of %d, %lld chunks to do, %d rank%s x %d "
             "thread%s, %s scheduling%s\n",
             (long long)catalog_count(r.images), (long long)r.chunk_count, r.job.chunk,
             (long long)todo_count, r.ranks, r.ranks > 1 ? "s" : "", omp_get_max_threads(),
             omp_get_max_threads() > 1 ? "s" : "", r.job.mode,
             r.previous ? (r.reuse_previous ? ", reusing the previous run's results"
                                            : ", previous run made with another model or "
                                              "options: recomputing everything")
                        : "");
      fflush(stdout);
    }
  }
  MPI_CHECK(MPI_Bcast(&complete, 1, MPI_INT, 0, MPI_COMM_WORLD));
  if (!complete) {
    coordinator c = {&r,
                     m,
                     {0},
                     0,
                     todo_count,
                     0,
                     fp_calloc((size_t)r.ranks, sizeof(int64_t)),
                     fp_calloc((size_t)r.ranks, sizeof(double))};
    if (r.rank == 0) {
      int64_t images = 0;
      for (int64_t i = 0; i < todo_count; i++)
        images += todo[i] == r.chunk_count - 1 ? catalog_count(r.images) - todo[i] * r.job.chunk
                                               : r.job.chunk;
      progress_start(&c.prog, "parse_catalog", (long)images);
      c.last_print = progress_now();
    }
    rank_summary summary = {0};
    double started = progress_now();
    work(&r, &c, todo, todo_count, &summary);
    catalog_run_finish(&r, m, &summary, started);
    free(c.rank_images);
    free(c.rank_seconds);
  }
  free(todo);
  manifest_close(m);
  catalog_previous_close(r.previous);
  category_prior_free(r.prior);
  unet_destroy(r.model);
  catalog_close(r.images);
  for (int k = 0; k < r.info.classes; k++) free(r.class_names[k]);
  free(r.class_names);
  free(r.opts.overrides);
  output_lock_release(lock_fd);
  MPI_CHECK(MPI_Finalize());
  return 0;
}
