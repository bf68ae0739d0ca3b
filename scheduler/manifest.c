#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

struct manifest {
  char *path;
  int fd;
  int64_t chunk_count, done_count;
  manifest_chunk *chunks;
};

/* The whole file; its size in *size. */
static char *read_all(const manifest *m, int fd, size_t *size) {
  struct stat st;
  FP_CHECK(fstat(fd, &st) == 0, "%s: fstat: %s", m->path, strerror(errno));
  char *text = fp_malloc((size_t)st.st_size + 1);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = pread(fd, text + got, (size_t)st.st_size - got, (off_t)got);
    FP_CHECK(n > 0, "%s: read: %s", m->path, n < 0 ? strerror(errno) : "file shrank while read");
    got += (size_t)n;
  }
  text[got] = '\0';
  *size = got;
  return text;
}

static void write_all(const manifest *m, const char *text, size_t length) {
  size_t written = 0;
  while (written < length) {
    ssize_t n = write(m->fd, text + written, length - written);
    if (n < 0 && errno == EINTR) continue;
    FP_CHECK(n > 0, "%s: write: %s", m->path, n < 0 ? strerror(errno) : "nothing written");
    written += (size_t)n;
  }
  FP_CHECK(fsync(m->fd) == 0, "%s: fsync: %s", m->path, strerror(errno));
}

static void parse_done_line(manifest *m, char *line, int line_no) {
  long long chunk;
  manifest_chunk c = {1, 0, 0, 0, 0, 0, 0, 0.0};
  long long ok, failed, new_images, changed, unchanged;
  int consumed = 0;
  int fields = sscanf(line,
                      "done %lld rank=%d ok=%lld failed=%lld new=%lld changed=%lld unchanged=%lld "
                      "seconds=%lf%n",
                      &chunk, &c.rank, &ok, &failed, &new_images, &changed, &unchanged, &c.seconds,
                      &consumed);
  FP_CHECK(fields == 8 && line[consumed] == '\0', "%s:%d: malformed line '%s'", m->path, line_no,
           line);
  FP_CHECK(chunk >= 0 && chunk < m->chunk_count, "%s:%d: chunk %lld outside 0..%lld", m->path,
           line_no, chunk, (long long)m->chunk_count - 1);
  c.ok = ok;
  c.failed = failed;
  c.new_images = new_images;
  c.changed = changed;
  c.unchanged = unchanged;
  if (!m->chunks[chunk].done) m->done_count++;
  m->chunks[chunk] = c;
}

manifest *manifest_open(const char *path, const char *header, int64_t chunk_count) {
  FP_CHECK(!strchr(header, '\n'), "manifest header must be one line: %s", header);
  manifest *m = fp_calloc(1, sizeof *m);
  m->path = strdup(path);
  FP_CHECK(m->path, "out of memory");
  m->chunk_count = chunk_count;
  m->chunks = fp_calloc((size_t)(chunk_count > 0 ? chunk_count : 1), sizeof *m->chunks);
  m->fd = open(path, O_RDWR | O_CREAT | O_APPEND, 0644);
  FP_CHECK(m->fd >= 0, "%s: cannot open the manifest: %s", path, strerror(errno));
  size_t size;
  char *text = read_all(m, m->fd, &size);
  if (size == 0) {
    size_t line_bytes = strlen(header) + 2;
    char *line = fp_malloc(line_bytes);
    snprintf(line, line_bytes, "%s\n", header);
    write_all(m, line, strlen(line));
    free(line);
    free(text);
    return m;
  }
  /* Everything after the last newline is a line torn by a crash. */
  char *last_newline = strrchr(text, '\n');
  size_t complete = last_newline ? (size_t)(last_newline - text) + 1 : 0;
  if (complete < size) {
    FP_CHECK(ftruncate(m->fd, (off_t)complete) == 0 && fsync(m->fd) == 0,
             "%s: cannot cut the torn last line: %s", path, strerror(errno));
    text[complete] = '\0';
    if (complete == 0) {
      free(text);
      manifest_close(m);
      return manifest_open(path, header, chunk_count);
    }
  }
  int line_no = 0;
  for (char *line = text, *next; *line; line = next) {
    next = strchr(line, '\n');
    *next++ = '\0';
    line_no++;
    if (line_no == 1) {
      if (strcmp(line, header) != 0)
        FP_FATAL("%s belongs to another job (first line '%s', this job's '%s'); use another "
                 "output.dir or remove that directory",
                 path, line, header);
      continue;
    }
    parse_done_line(m, line, line_no);
  }
  free(text);
  return m;
}

const manifest_chunk *manifest_chunk_at(const manifest *m, int64_t chunk) {
  FP_CHECK(chunk >= 0 && chunk < m->chunk_count, "%s: chunk %lld outside 0..%lld", m->path,
           (long long)chunk, (long long)m->chunk_count - 1);
  return &m->chunks[chunk];
}

int64_t manifest_done_count(const manifest *m) {
  return m->done_count;
}

void manifest_record(manifest *m, int64_t chunk, const manifest_chunk *record) {
  FP_CHECK(chunk >= 0 && chunk < m->chunk_count, "%s: chunk %lld outside 0..%lld", m->path,
           (long long)chunk, (long long)m->chunk_count - 1);
  char line[512];
  int n = snprintf(line, sizeof line,
                   "done %lld rank=%d ok=%lld failed=%lld new=%lld changed=%lld unchanged=%lld "
                   "seconds=%.3f\n",
                   (long long)chunk, record->rank, (long long)record->ok, (long long)record->failed,
                   (long long)record->new_images, (long long)record->changed,
                   (long long)record->unchanged, record->seconds);
  FP_CHECK(n > 0 && (size_t)n < sizeof line, "%s: manifest line too long", m->path);
  write_all(m, line, (size_t)n);
  if (!m->chunks[chunk].done) m->done_count++;
  m->chunks[chunk] = *record;
  m->chunks[chunk].done = 1;
}

void manifest_forget(manifest *m, int64_t chunk) {
  FP_CHECK(chunk >= 0 && chunk < m->chunk_count, "%s: chunk %lld outside 0..%lld", m->path,
           (long long)chunk, (long long)m->chunk_count - 1);
  if (m->chunks[chunk].done) m->done_count--;
  memset(&m->chunks[chunk], 0, sizeof m->chunks[chunk]);
}

void manifest_close(manifest *m) {
  if (!m) return;
  close(m->fd);
  free(m->chunks);
  free(m->path);
  free(m);
}
