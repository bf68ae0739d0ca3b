/* Making a finished file durable under its final name: fsync the file, rename it over the final
 * name, fsync the directory, so that after a crash or power loss the final name holds either
 * the old complete file or the new complete one. The one definition, for checkpoints and
 * parse_catalog's outputs. */
#ifndef FP_DURABLE_H
#define FP_DURABLE_H

#include <stddef.h>

/* The directory holding `path`: what comes before its last '/', "/" for a file in the root, "."
 * for a bare name. */
void path_directory(const char *path, char *directory, size_t size);

/* Stops with an error naming the file (and the library call's message) on any failure; a
 * temporary that cannot be renamed is removed first. */
void durable_rename(const char *temporary, const char *path);

#endif
