/* The manifest of a chunked job's output directory: an append-only text file
 * recording which chunks are finished, so that a rerun after a crash (or
 * kill -9) does only what is missing. The first line identifies the job; each
 * later line records one finished chunk:
 *
 *   <header given by the caller>
 *   done <chunk> rank=<r> ok=<n> failed=<n> new=<n> changed=<n> unchanged=<n> seconds=<s>
 *
 * A line is appended (and the file fsync'ed) only after the chunk's results are
 * durable on disk, so a listed chunk is never lost; a chunk whose results were
 * written but whose line was not is simply done again (its result file is
 * replaced, never duplicated). A last line torn by a crash (no newline) is cut
 * off when the manifest is opened. One process writes a manifest at a time. */
#ifndef FP_MANIFEST_H
#define FP_MANIFEST_H

#include <stdint.h>

typedef struct manifest_chunk {
  int done;                               /* 0: not listed */
  int rank;                               /* the rank that computed it (informational) */
  int64_t ok, failed;                     /* images with results / recorded as failed */
  int64_t new_images, changed, unchanged; /* nightly comparison with the previous run */
  double seconds;                         /* the rank's time on the chunk */
} manifest_chunk;

typedef struct manifest manifest;

/* Opens path, creating it with `header` (one line, no newline) if absent. An
 * existing manifest whose first line differs belongs to another job: FP_FATAL
 * naming the file and both headers. Lines naming a chunk outside
 * [0, chunk_count) or not parsing are errors naming the line. */
manifest *manifest_open(const char *path, const char *header, int64_t chunk_count);
const manifest_chunk *manifest_chunk_at(const manifest *m, int64_t chunk);
int64_t manifest_done_count(const manifest *m);
/* Records `chunk` as done: appends its line and fsyncs the file. */
void manifest_record(manifest *m, int64_t chunk, const manifest_chunk *record);
/* Forgets that `chunk` is done (its results were found missing); appends nothing, so
 * only this process's view changes until the chunk is recorded again. */
void manifest_forget(manifest *m, int64_t chunk);
void manifest_close(manifest *m);

#endif
