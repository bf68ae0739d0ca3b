#include "output_lock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

int output_lock_take(const char *lock_path, const char *what, const char *command) {
  int fd = open(lock_path, O_RDWR | O_CREAT, 0644);
  FP_CHECK(fd >= 0, "%s: cannot open: %s", lock_path, strerror(errno));
  struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
  if (fcntl(fd, F_SETLK, &lock) != 0) {
    char holder[128] = "";
    ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
    holder[n > 0 ? n : 0] = '\0';
    holder[strcspn(holder, "\n")] = '\0';
    FP_FATAL("%s is in use by another %s (%s, lock %s); wait for that one to end or give this "
             "run another output",
             what, command, holder[0] ? holder : "its lock file names no process", lock_path);
  }
  char host[64] = "?", text[160];
  gethostname(host, sizeof host - 1);
  int length = snprintf(text, sizeof text, "pid %ld on %s\n", (long)getpid(), host);
  FP_CHECK(ftruncate(fd, 0) == 0 && pwrite(fd, text, (size_t)length, 0) == length,
           "%s: cannot write: %s", lock_path, strerror(errno));
  return fd;
}

void output_lock_release(int lock) {
  if (lock >= 0) close(lock);
}

static int has_any_prefix(const char *name, const char *const *prefixes, int count) {
  for (int i = 0; i < count; i++)
    if (!strncmp(name, prefixes[i], strlen(prefixes[i]))) return 1;
  return 0;
}

void output_lock_remove_stale(const char *directory, const char *const *prefixes, int count,
                              const char *command) {
  DIR *dir = opendir(directory);
  FP_CHECK(dir, "%s: cannot list: %s", directory, strerror(errno));
  int removed = 0;
  for (struct dirent *entry; (entry = readdir(dir));) {
    if (!has_any_prefix(entry->d_name, prefixes, count)) continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", directory, entry->d_name);
    FP_CHECK(unlink(path) == 0, "%s: cannot remove: %s", path, strerror(errno));
    removed++;
  }
  closedir(dir);
  if (removed)
    printf("%s: removed %d temporary file%s an earlier, killed run left in %s\n", command, removed,
           removed == 1 ? "" : "s", directory);
}
