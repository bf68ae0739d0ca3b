#include "harness_common.h"

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "harness_track.h"

static jmp_buf guard;

static void jump_back(void) {
  longjmp(guard, 1);
}

int fuzz_guarded(void (*body)(void *context), void *context) {
  volatile int stopped = 0;
  uint64_t mark = fuzz_track_mark();
  /* set for every run: it re-arms fp_fatal_at after the previous run's jump out of it */
  fp_set_fatal_hook(NULL, jump_back);
  if (setjmp(guard)) {
    fuzz_track_release(mark);
    stopped = 1;
  } else {
    body(context);
  }
  fp_set_fatal_hook(NULL, NULL);
  return stopped;
}

static char tmp_dir[4096];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void remove_tmp_dir(void) {
  nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_tmp_dir(void) {
  if (tmp_dir[0]) return tmp_dir;
  const char *base = getenv("TMPDIR");
  snprintf(tmp_dir, sizeof tmp_dir, "%s/fp_fuzz_XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(tmp_dir)) {
    perror(tmp_dir);
    abort();
  }
  atexit(remove_tmp_dir);
  return tmp_dir;
}

/* mkdir -p of the directories in path before its last '/'. */
static void make_parents(char *path) {
  for (char *slash = strchr(path + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
    *slash = '\0';
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
      perror(path);
      abort();
    }
    *slash = '/';
  }
}

const char *fuzz_write_file(const char *name, const void *data, size_t size) {
  static char path[8192];
  snprintf(path, sizeof path, "%s/%s", fuzz_tmp_dir(), name);
  make_parents(path);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
    perror(path);
    abort();
  }
  return path;
}

int fuzz_split(const uint8_t *data, size_t size, const char *separator, size_t *first_size,
               const uint8_t **rest, size_t *rest_size) {
  size_t n = strlen(separator);
  for (size_t line = 0; line + n <= size;) {
    const uint8_t *end = memchr(data + line, '\n', size - line);
    size_t length = end ? (size_t)(end - data) - line : size - line;
    if (length == n && !memcmp(data + line, separator, n)) {
      *first_size = line ? line - 1 : 0;
      *rest = data + line + n + (end ? 1 : 0);
      *rest_size = size - (size_t)(*rest - data);
      return 1;
    }
    if (!end) break;
    line += length + 1;
  }
  *first_size = size;
  *rest = data + size;
  *rest_size = 0;
  return 0;
}

void fuzz_require(int condition, const char *what) {
  if (condition) return;
  fprintf(stderr, "fuzz property violated: %s\n", what);
  abort();
}
