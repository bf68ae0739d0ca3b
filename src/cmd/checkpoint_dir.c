#include "checkpoint_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "catalog_files.h"
#include "check.h"

static int take_lock(const char *directory) {
  char path[4096];
  FP_CHECK(snprintf(path, sizeof path, "%s/lock", directory) < (int)sizeof path,
           "checkpoint.dir too long: %s", directory);
  int fd = open(path, O_RDWR | O_CREAT, 0644);
  FP_CHECK(fd >= 0, "%s: cannot open: %s", path, strerror(errno));
  struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
  if (fcntl(fd, F_SETLK, &lock) != 0) {
    char holder[128] = "";
    ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
    holder[n > 0 ? n : 0] = '\0';
    holder[strcspn(holder, "\n")] = '\0';
    FP_FATAL("checkpoint.dir %s is in use by another train (%s); give this run its own "
             "checkpoint.dir, or wait for that one to end",
             directory, holder[0] ? holder : "its lock file names no process");
  }
  char host[64] = "?", text[160];
  gethostname(host, sizeof host - 1);
  int length = snprintf(text, sizeof text, "pid %ld on %s\n", (long)getpid(), host);
  FP_CHECK(ftruncate(fd, 0) == 0 && pwrite(fd, text, (size_t)length, 0) == length,
           "%s: cannot write: %s", path, strerror(errno));
  return fd;
}

/* checkpoint_save writes <name>.tmp.<pid> and renames it: what a kill left has that form */
static int is_stale_temporary(const char *name) {
  return !strncmp(name, "last.h5.tmp.", 12) || !strncmp(name, "best.h5.tmp.", 12);
}

static void remove_stale_temporaries(const char *directory) {
  DIR *dir = opendir(directory);
  FP_CHECK(dir, "%s: cannot list: %s", directory, strerror(errno));
  int removed = 0;
  for (struct dirent *entry; (entry = readdir(dir));) {
    if (!is_stale_temporary(entry->d_name)) continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", directory, entry->d_name);
    FP_CHECK(unlink(path) == 0, "%s: cannot remove: %s", path, strerror(errno));
    removed++;
  }
  closedir(dir);
  if (removed)
    printf("train: removed %d temporary checkpoint file%s an earlier run left in %s\n", removed,
           removed == 1 ? "" : "s", directory);
}

int checkpoint_dir_open(const char *directory) {
  catalog_make_directory(directory, "checkpoint.dir");
  int lock = take_lock(directory);
  remove_stale_temporaries(directory);
  return lock;
}

void checkpoint_dir_close(int lock) {
  if (lock >= 0) close(lock);
}
