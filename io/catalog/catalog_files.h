/* Files of a parse_catalog output directory that must never be seen half
 * written: each is written under `<name>.tmp` and renamed to its final name
 * only once complete and on disk (fsync of the file, then of the directory).
 * The temporary file being written is removed if the process stops early
 * (exit, FP_FATAL, SIGINT, SIGTERM, SIGHUP); after a kill -9 it stays behind
 * and the next run removes it (catalog_remove_temporaries). */
#ifndef FP_CATALOG_FILES_H
#define FP_CATALOG_FILES_H

#include <stddef.h>

/* "<path>.tmp" into temporary; registers it for removal on an early stop. One
 * file per process at a time. */
void catalog_begin_temporary(const char *path, char *temporary, size_t size);
/* fsync(temporary), rename it to path, fsync path's directory; unregisters it. */
void catalog_commit_temporary(const char *temporary, const char *path);
/* mkdir -p; FP_FATAL naming the directory if it cannot be made or written to. */
void catalog_make_directory(const char *path, const char *what);
/* Removes every "*.tmp" file in directory (left by a killed run); returns how many. */
int catalog_remove_temporaries(const char *directory);

#endif
