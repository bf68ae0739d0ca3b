/* The end of a parse_catalog run: each rank merges a contiguous range of part files into its
 * shard, rank 0 writes the master over the shards, the previews and the summary. */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "catalog_files.h"
#include "catalog_master.h"
#include "catalog_preview.h"
#include "catalog_run.h"
#include "check.h"
#include "mpi_check.h"
#include "png_io.h"
#include "progress.h"

void catalog_run_join_path(char *out, const char *directory, const char *name) {
  int n = snprintf(out, PATH_SIZE, "%s/%s", directory, name);
  FP_CHECK(n > 0 && n < PATH_SIZE, "%s/%s: path too long", directory, name);
}

void chunk_counts_add(chunk_counts *total, const chunk_counts *c) {
  total->ok += c->ok;
  total->failed += c->failed;
  total->computed += c->computed;
  total->reused += c->reused;
  total->new_images += c->new_images;
  total->changed += c->changed;
  total->unchanged += c->unchanged;
  total->mask_bytes += c->mask_bytes;
}

static void add_totals(const catalog_rows *rows, int classes, catalog_totals *t) {
  for (int64_t i = 0; i < rows->count; i++) {
    double photo_pixels = (double)rows->letterbox[i * 5 + 3] * rows->letterbox[i * 5 + 4];
    for (int k = 0; k < classes; k++) {
      float fraction = rows->pixel_fraction[i * classes + k];
      t->image_count[k] += fraction > 0;
      t->pixel_count[k] += llround(fraction * photo_pixels);
      t->fraction_sum[k] += fraction;
    }
  }
}

/* This rank's contiguous range of chunks into one shard file. */
static catalog_shard_entry merge_parts(const run *r, const int64_t *chunk_ok,
                                       const int64_t *chunk_failed, catalog_totals *totals) {
  int64_t begin = r->chunk_count * r->rank / r->ranks;
  int64_t end = r->chunk_count * (r->rank + 1) / r->ranks;
  catalog_shard_entry entry;
  memset(&entry, 0, sizeof entry);
  for (int64_t c = 0; c < begin; c++) {
    entry.first_row += chunk_ok[c];
    entry.first_failure += chunk_failed[c];
  }
  for (int64_t c = begin; c < end; c++) {
    entry.rows += chunk_ok[c];
    entry.failures += chunk_failed[c];
  }
  if (begin == end) return entry;
  snprintf(entry.file, sizeof entry.file, "shards/shard-%04d.h5", r->rank);
  char path[PATH_SIZE];
  catalog_run_join_path(path, r->job.dir, entry.file);
  catalog_shard_writer *w = catalog_shard_create(path, &r->layout, entry.rows, entry.failures);
  catalog_rows rows;
  catalog_rows_init(&rows, &r->layout, r->job.chunk);
  catalog_failure *failures = fp_calloc((size_t)r->job.chunk, sizeof *failures);
  int64_t row = 0, failure = 0;
  for (int64_t c = begin; c < end; c++) {
    char part[PATH_SIZE];
    catalog_part_path(r->parts, c, part, sizeof part);
    catalog_shard_reader *reader = catalog_shard_open(part);
    FP_CHECK(catalog_shard_rows(reader) == chunk_ok[c] &&
                 catalog_shard_failures(reader) == chunk_failed[c],
             "%s holds %lld rows and %lld failures but the manifest %s says %lld and %lld", part,
             (long long)catalog_shard_rows(reader), (long long)catalog_shard_failures(reader),
             r->manifest_path, (long long)chunk_ok[c], (long long)chunk_failed[c]);
    catalog_shard_read_rows(reader, 0, chunk_ok[c], &rows);
    catalog_shard_write_rows(w, row, &rows);
    add_totals(&rows, r->layout.classes, totals);
    catalog_shard_read_failures(reader, 0, chunk_failed[c], failures);
    catalog_shard_write_failures(w, failure, failures, chunk_failed[c]);
    row += chunk_ok[c];
    failure += chunk_failed[c];
    catalog_shard_close(reader);
  }
  catalog_shard_commit(w);
  catalog_rows_free(&rows);
  free(failures);
  return entry;
}

static void utc_now(char *out, size_t size) {
  time_t now = time(NULL);
  struct tm utc;
  FP_CHECK(gmtime_r(&now, &utc), "gmtime_r failed");
  strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &utc);
}

static const char *job_id(const run *r) {
  if (r->job.job_id[0]) return r->job.job_id;
  const char *slash = strrchr(r->job.dir, '/');
  return slash && slash[1] ? slash + 1 : r->job.dir;
}

static void write_master(const run *r, const catalog_shard_entry *entries, int entry_count,
                         const catalog_totals *totals, const catalog_run_counts *counts) {
  uint8_t(*colours)[3] = fp_calloc((size_t)r->layout.classes, sizeof *colours);
  catalog_class_colours(r->layout.classes, colours);
  char created[32];
  utc_now(created, sizeof created);
  catalog_master_info info = {r->layout,
                              r->class_names,
                              (const uint8_t(*)[3])colours,
                              unet_arch_name(r->info.arch),
                              r->job.checkpoint,
                              r->checkpoint_hash,
                              r->result_fingerprint,
                              job_id(r),
                              r->config_text,
                              r->job.source,
                              r->job.prior_table,
                              r->job.prior_csv,
                              r->job.previous,
                              created,
                              *counts,
                              *totals};
  catalog_master_write(r->master_path, &info, entries, entry_count);
  free(colours);
}

static void write_previews(const run *r, int count) {
  char directory[PATH_SIZE];
  catalog_run_join_path(directory, r->job.dir, "preview");
  catalog_make_directory(directory, "preview directory");
  const catalog_layout *l = &r->layout;
  size_t plane = (size_t)l->height * l->width;
  char(*ids)[CATALOG_ID_LENGTH] = fp_calloc((size_t)count, sizeof *ids);
  int64_t *index = fp_calloc((size_t)count, sizeof *index);
  float *fractions = fp_calloc((size_t)count * l->classes, sizeof *fractions);
  uint8_t *masks = fp_malloc((size_t)count * plane), *photo = fp_malloc(plane * 3);
  uint8_t(*colours)[3] = fp_calloc((size_t)l->classes, sizeof *colours);
  catalog_class_colours(l->classes, colours);
  preview_panel *panels = fp_calloc((size_t)count, sizeof *panels);
  catalog_master_read(r->master_path, 0, count, ids, index, fractions, masks);
  for (int i = 0; i < count; i++) {
    catalog_geometry geometry;
    char reason[CATALOG_REASON_LENGTH];
    FP_CHECK(!catalog_load_image(r->images, index[i], l->height, l->width, photo, &geometry, reason,
                                 sizeof reason),
             "preview of %s: %s", ids[i], reason);
    preview_image image = {
        ids[i],    photo,   masks + (size_t)i * plane, fractions + (size_t)i * l->classes,
        l->height, l->width};
    panels[i] =
        catalog_preview_panel(&image, l->classes, r->class_names, (const uint8_t(*)[3])colours);
    char path[PATH_SIZE + 64];
    snprintf(path, sizeof path, "%s/%03d-%s.png", directory, i, ids[i]);
    png_write_u8(path, panels[i].rgb, panels[i].height, panels[i].width, 3);
  }
  preview_panel sheet = catalog_contact_sheet(panels, count);
  char path[PATH_SIZE + 64];
  snprintf(path, sizeof path, "%s/contact_sheet.png", directory);
  png_write_u8(path, sheet.rgb, sheet.height, sheet.width, 3);
  printf("previews: %d overlays and %s\n", count, path);
  free(sheet.rgb);
  for (int i = 0; i < count; i++) free(panels[i].rgb);
  free(panels);
  free(colours);
  free(photo);
  free(masks);
  free(fractions);
  free(index);
  free(ids);
}

static void add_summary(rank_summary *all, const rank_summary *s) {
  all->chunks += s->chunks;
  chunk_counts_add(&all->counts, &s->counts);
  all->seconds.decode += s->seconds.decode;
  all->seconds.reuse += s->seconds.reuse;
  all->seconds.model += s->seconds.model;
  all->seconds.stats += s->seconds.stats;
  all->seconds.zstd += s->seconds.zstd;
  all->seconds.write += s->seconds.write;
  all->merge += s->merge;
  all->idle += s->idle;
  all->busy += s->busy;
}

/* The table per rank, the catalog counts and where the time went. */
static void print_summary(const run *r, const rank_summary *ranks,
                          const catalog_run_counts *run_counts, int shard_count,
                          double wall_seconds) {
  printf("\nsummary of job %s (%d rank%s, %lld chunks of %d)\n", job_id(r), r->ranks,
         r->ranks > 1 ? "s" : "", (long long)r->chunk_count, r->job.chunk);
  printf("%4s %6s %7s %8s %6s %6s %8s %7s %8s %7s %7s %7s %7s %7s %8s\n", "rank", "chunks",
         "images", "computed", "reused", "failed", "decode_s", "reuse_s", "model_s", "stats_s",
         "zstd_s", "write_s", "merge_s", "idle_s", "img/s");
  rank_summary all = {0};
  for (int k = 0; k <= r->ranks; k++) {
    const rank_summary *s = k < r->ranks ? &ranks[k] : &all;
    if (k < r->ranks) add_summary(&all, s);
    int64_t images = s->counts.ok + s->counts.failed;
    /* a rank: its images over its busy time; all: every image over the wall time */
    double seconds = k < r->ranks ? s->busy : wall_seconds;
    char label[16];
    snprintf(label, sizeof label, k < r->ranks ? "%d" : "all", k);
    printf("%4s %6lld %7lld %8lld %6lld %6lld %8.2f %7.2f %8.2f %7.2f %7.2f %7.2f %7.2f %7.2f "
           "%8.2f\n",
           label, (long long)s->chunks, (long long)images, (long long)s->counts.computed,
           (long long)s->counts.reused, (long long)s->counts.failed, s->seconds.decode,
           s->seconds.reuse, s->seconds.model, s->seconds.stats, s->seconds.zstd, s->seconds.write,
           s->merge, s->idle, seconds > 0 ? (double)images / seconds : 0.0);
  }
  printf("catalog: %lld images, %lld parsed, %lld failed; against the previous run: new %lld, "
         "changed %lld, unchanged %lld, removed %lld; %lld results reused\n",
         (long long)catalog_count(r->images), (long long)run_counts->images,
         (long long)run_counts->failed, (long long)run_counts->new_images,
         (long long)run_counts->changed, (long long)run_counts->unchanged,
         (long long)run_counts->removed, (long long)run_counts->reused);
  double computed = (double)all.counts.computed;
  const stage_seconds *t = &all.seconds;
  double other = t->decode + t->reuse + t->stats + t->zstd + t->write + all.merge;
  if (computed > 0 && t->model > 0 && other > 0) {
    printf("stages, computed images per second of stage time (summed over ranks): decode %.1f, "
           "model %.2f, stats %.1f, zstd %.1f, HDF5 write %.1f; everything but the model %.1f "
           "img/s = %.1fx the model\n",
           computed / t->decode, computed / t->model, computed / t->stats, computed / t->zstd,
           computed / t->write, computed / other, t->model / other);
    double mean = (double)all.counts.mask_bytes / computed;
    printf("masks: %.0f bytes per compressed %dx%d mask on average (ratio %.1f)\n", mean,
           r->layout.height, r->layout.width, (double)r->layout.height * r->layout.width / mean);
  }
  printf("output: %s (%lld rows, %lld failed, %d shard%s)\n", r->master_path,
         (long long)run_counts->images, (long long)run_counts->failed, shard_count,
         shard_count == 1 ? "" : "s");
}

/* The part files, once the shards and the master hold their results. */
void catalog_run_remove_parts(const run *r) {
  for (int64_t c = 0; c < r->chunk_count; c++) {
    char part[PATH_SIZE];
    catalog_part_path(r->parts, c, part, sizeof part);
    FP_CHECK(unlink(part) == 0 || errno == ENOENT, "cannot remove %s: %s", part, strerror(errno));
  }
}

/* All ranks: merge, master (rank 0), previews, summary. */
void catalog_run_finish(run *r, manifest *m, const rank_summary *mine, double started) {
  int64_t n = r->chunk_count;
  int64_t *chunk_ok = fp_calloc((size_t)n, sizeof *chunk_ok);
  int64_t *chunk_failed = fp_calloc((size_t)n, sizeof *chunk_failed);
  catalog_run_counts counts = {0};
  if (r->rank == 0) {
    FP_CHECK(manifest_done_count(m) == n, "%s: %lld of %lld chunks are done after the run",
             r->manifest_path, (long long)manifest_done_count(m), (long long)n);
    for (int64_t c = 0; c < n; c++) {
      const manifest_chunk *record = manifest_chunk_at(m, c);
      chunk_ok[c] = record->ok;
      chunk_failed[c] = record->failed;
      counts.images += record->ok;
      counts.failed += record->failed;
      counts.new_images += record->new_images;
      counts.changed += record->changed;
      counts.unchanged += record->unchanged;
    }
  }
  MPI_CHECK(MPI_Bcast(chunk_ok, (int)n, MPI_INT64_T, 0, MPI_COMM_WORLD));
  MPI_CHECK(MPI_Bcast(chunk_failed, (int)n, MPI_INT64_T, 0, MPI_COMM_WORLD));
  const int k = r->layout.classes;
  catalog_totals totals = {fp_calloc((size_t)k, sizeof(int64_t)),
                           fp_calloc((size_t)k, sizeof(int64_t)),
                           fp_calloc((size_t)k, sizeof(double))};
  rank_summary summary = *mine;
  double start = progress_now();
  catalog_shard_entry entry = merge_parts(r, chunk_ok, chunk_failed, &totals);
  summary.merge = progress_now() - start;
  catalog_shard_entry *entries = fp_calloc((size_t)r->ranks, sizeof *entries);
  rank_summary *summaries = fp_calloc((size_t)r->ranks, sizeof *summaries);
  MPI_CHECK(MPI_Gather(&entry, sizeof entry, MPI_BYTE, entries, sizeof entry, MPI_BYTE, 0,
                       MPI_COMM_WORLD));
  MPI_CHECK(MPI_Gather(&summary, sizeof summary, MPI_BYTE, summaries, sizeof summary, MPI_BYTE, 0,
                       MPI_COMM_WORLD));
  catalog_totals sums = {fp_calloc((size_t)k, sizeof(int64_t)),
                         fp_calloc((size_t)k, sizeof(int64_t)),
                         fp_calloc((size_t)k, sizeof(double))};
  MPI_CHECK(
      MPI_Reduce(totals.image_count, sums.image_count, k, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD));
  MPI_CHECK(
      MPI_Reduce(totals.pixel_count, sums.pixel_count, k, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD));
  MPI_CHECK(MPI_Reduce(totals.fraction_sum, sums.fraction_sum, k, MPI_DOUBLE, MPI_SUM, 0,
                       MPI_COMM_WORLD));
  if (r->rank == 0) {
    int shard_count = 0;
    for (int s = 0; s < r->ranks; s++)
      if (entries[s].file[0]) entries[shard_count++] = entries[s];
    for (int s = 0; s < r->ranks; s++) counts.reused += summaries[s].counts.reused;
    counts.removed = r->previous ? catalog_previous_removed(r->previous, r->images) : 0;
    write_master(r, entries, shard_count, &sums, &counts);
    catalog_run_remove_parts(r);
    double wall_seconds = progress_now() - started;
    if (r->opts.preview > 0)
      write_previews(r, counts.images < r->opts.preview ? (int)counts.images : r->opts.preview);
    print_summary(r, summaries, &counts, shard_count, wall_seconds);
  }
  free(entries);
  free(summaries);
  free(chunk_ok);
  free(chunk_failed);
  void *arrays[] = {totals.image_count, totals.pixel_count, totals.fraction_sum,
                    sums.image_count,   sums.pixel_count,   sums.fraction_sum};
  for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) free(arrays[i]);
}
