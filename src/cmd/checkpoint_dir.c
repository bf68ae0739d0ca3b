#include "checkpoint_dir.h"

#include <stdio.h>

#include "catalog_files.h"
#include "check.h"
#include "output_lock.h"

int checkpoint_dir_open(const char *directory) {
  catalog_make_directory(directory, "checkpoint.dir");
  char path[4096], what[4200];
  FP_CHECK(snprintf(path, sizeof path, "%s/lock", directory) < (int)sizeof path,
           "checkpoint.dir too long: %s", directory);
  snprintf(what, sizeof what, "checkpoint.dir %s", directory);
  int lock = output_lock_take(path, what, "train");
  /* checkpoint_save writes <name>.tmp.<pid> and renames it: what a kill left has that form */
  const char *const stale[] = {"last.h5.tmp.", "best.h5.tmp."};
  output_lock_remove_stale(directory, stale, 2, "train");
  return lock;
}

void checkpoint_dir_close(int lock) {
  output_lock_release(lock);
}
