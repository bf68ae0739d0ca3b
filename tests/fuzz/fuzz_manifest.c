/* scheduler/manifest.c: the input is a chunked job's manifest as found on disk (torn,
 * foreign or corrupt), opened for CHUNKS chunks. A chunk recorded then must be read back
 * by the next open: a listed chunk is never lost. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness_common.h"
#include "manifest.h"

#define CHUNKS 16
static const char header[] = "parse_catalog job=fuzz catalog=abc chunks=16";

typedef struct manifest_case {
  const char *path;
  manifest *manifest;
} manifest_case;

static void open_manifest(void *context) {
  manifest_case *c = context;
  c->manifest = manifest_open(c->path, header, CHUNKS);
}

/* manifest_open stopped with FP_FATAL leaves its descriptor of path open: close it. */
static void close_descriptors_of(const char *path) {
  struct stat file, open_file;
  if (stat(path, &file) != 0) return;
  DIR *fds = opendir("/proc/self/fd");
  fuzz_require(fds != NULL, "/proc/self/fd");
  for (struct dirent *e; (e = readdir(fds));) {
    int fd = atoi(e->d_name);
    if (e->d_name[0] != '.' && fd != dirfd(fds) && fstat(fd, &open_file) == 0 &&
        open_file.st_dev == file.st_dev && open_file.st_ino == file.st_ino)
      close(fd);
  }
  closedir(fds);
}

static void check_chunks(const manifest *m) {
  int64_t done = 0;
  for (int64_t k = 0; k < CHUNKS; k++) done += manifest_chunk_at(m, k)->done;
  fuzz_require(done == manifest_done_count(m), "done count");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  manifest_case c = {fuzz_write_file("manifest.txt", data, size), NULL};
  if (fuzz_guarded(open_manifest, &c)) {
    close_descriptors_of(c.path);
    return 0;
  }
  check_chunks(c.manifest);
  int64_t chunk = (int64_t)(size % CHUNKS);
  manifest_chunk record = {1, 3, 40, 2, 5, 6, 7, 1.5};
  manifest_record(c.manifest, chunk, &record);
  manifest_close(c.manifest);
  fuzz_require(!fuzz_guarded(open_manifest, &c), "a manifest written by manifest_record opens");
  const manifest_chunk *read = manifest_chunk_at(c.manifest, chunk);
  fuzz_require(read->done && read->rank == 3 && read->ok == 40 && read->failed == 2 &&
                   read->new_images == 5 && read->changed == 6 && read->unchanged == 7 &&
                   read->seconds == 1.5,
               "the recorded chunk is read back");
  check_chunks(c.manifest);
  manifest_close(c.manifest);
  return 0;
}
