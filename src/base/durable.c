#include "durable.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static void fsync_path(const char *path) {
  int fd = open(path, O_RDONLY);
  FP_CHECK(fd >= 0, "%s: cannot open to fsync: %s", path, strerror(errno));
  FP_CHECK(fsync(fd) == 0, "%s: fsync: %s", path, strerror(errno));
  close(fd);
}

void path_directory(const char *path, char *directory, size_t size) {
  FP_CHECK(strlen(path) < size, "%s: path too long", path);
  snprintf(directory, size, "%s", path);
  char *slash = strrchr(directory, '/');
  if (slash == directory)
    slash[1] = '\0';
  else if (slash)
    *slash = '\0';
  else
    snprintf(directory, size, ".");
}

void durable_rename(const char *temporary, const char *path) {
  fsync_path(temporary);
  if (rename(temporary, path) != 0) {
    int error = errno;
    unlink(temporary);
    FP_FATAL("cannot rename %s to %s: %s", temporary, path, strerror(error));
  }
  char directory[PATH_MAX];
  path_directory(path, directory, sizeof directory);
  fsync_path(directory);
}
