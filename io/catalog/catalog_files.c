#include "catalog_files.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "durable.h"

static char pending[PATH_MAX];

static void remove_pending(void) {
  if (pending[0]) unlink(pending);
}

static void remove_pending_on_signal(int sig) {
  if (pending[0]) unlink(pending);
  signal(sig, SIG_DFL);
  raise(sig);
}

void catalog_begin_temporary(const char *path, char *temporary, size_t size) {
  static int installed;
  FP_CHECK(!pending[0], "%s: only one temporary file at a time (%s is open)", path, pending);
  int n = snprintf(temporary, size, "%s.tmp", path);
  FP_CHECK(n > 0 && (size_t)n < size && (size_t)n < sizeof pending, "%s: path too long", path);
  if (!installed) {
    FP_CHECK(atexit(remove_pending) == 0, "atexit failed");
    int signals[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t s = 0; s < sizeof signals / sizeof signals[0]; s++)
      FP_CHECK(signal(signals[s], remove_pending_on_signal) != SIG_ERR, "signal(%d) failed",
               signals[s]);
    installed = 1;
  }
  snprintf(pending, sizeof pending, "%s", temporary);
}

void catalog_commit_temporary(const char *temporary, const char *path) {
  durable_rename(temporary, path);
  pending[0] = '\0';
}

void catalog_make_directory(const char *path, const char *what) {
  char partial[PATH_MAX];
  size_t n = strlen(path);
  FP_CHECK(n > 0 && n < sizeof partial, "%s: %s path is empty or too long", path, what);
  for (size_t i = 1; i <= n; i++) {
    if (path[i] != '/' && path[i] != '\0') continue;
    memcpy(partial, path, i);
    partial[i] = '\0';
    if (mkdir(partial, 0777) != 0 && errno != EEXIST)
      FP_FATAL("cannot create %s %s: %s", what, partial, strerror(errno));
  }
  struct stat st;
  FP_CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode), "%s %s is not a directory", what, path);
  FP_CHECK(access(path, W_OK | X_OK) == 0, "%s %s is not writable: %s", what, path,
           strerror(errno));
}

int catalog_remove_temporaries(const char *directory) {
  DIR *d = opendir(directory);
  FP_CHECK(d, "%s: cannot list: %s", directory, strerror(errno));
  int removed = 0;
  for (struct dirent *e; (e = readdir(d));) {
    size_t n = strlen(e->d_name);
    if (n <= 4 || strcmp(e->d_name + n - 4, ".tmp")) continue;
    char path[PATH_MAX];
    int written = snprintf(path, sizeof path, "%s/%s", directory, e->d_name);
    FP_CHECK(written > 0 && (size_t)written < sizeof path, "%s/%s: path too long", directory,
             e->d_name);
    FP_CHECK(unlink(path) == 0, "cannot remove %s: %s", path, strerror(errno));
    removed++;
  }
  closedir(d);
  return removed;
}
