/* Force-included (-include) into every parser source and harness of the fuzz build.
 *
 * The parsers stop on bad input with FP_FATAL, which exits. The harnesses turn that
 * exit into a longjmp (harness_common.h), and then whatever the parser had allocated
 * or opened so far is lost: over a million inputs the leaked memory and file
 * descriptors would end the run. So the heap and the stdio/dirent calls of the
 * code compiled here go through this registry, which fuzz_track_release frees
 * and closes after such a jump. Outside a jump nothing is released, so a real
 * leak still reaches LeakSanitizer. */
#ifndef FP_HARNESS_TRACK_H
#define FP_HARNESS_TRACK_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

void *fuzz_track_malloc(size_t size);
void *fuzz_track_calloc(size_t count, size_t size);
void *fuzz_track_realloc(void *pointer, size_t size);
void fuzz_track_free(void *pointer);
char *fuzz_track_strdup(const char *text);
ssize_t fuzz_track_getline(char **line, size_t *capacity, FILE *file);
FILE *fuzz_track_fopen(const char *path, const char *mode);
int fuzz_track_fclose(FILE *file);
DIR *fuzz_track_opendir(const char *path);
int fuzz_track_closedir(DIR *directory);

/* A mark of the present: fuzz_track_release(mark) frees the allocations made since, and
 * closes the files and directories opened since, that are still live. */
uint64_t fuzz_track_mark(void);
void fuzz_track_release(uint64_t mark);

#ifndef FP_HARNESS_TRACK_IMPLEMENTATION
#undef strdup
#define malloc(size) fuzz_track_malloc(size)
#define calloc(count, size) fuzz_track_calloc(count, size)
#define realloc(pointer, size) fuzz_track_realloc(pointer, size)
#define free(pointer) fuzz_track_free(pointer)
#define strdup(text) fuzz_track_strdup(text)
#define getline(line, capacity, file) fuzz_track_getline(line, capacity, file)
#define fopen(path, mode) fuzz_track_fopen(path, mode)
#define fclose(file) fuzz_track_fclose(file)
#define opendir(path) fuzz_track_opendir(path)
#define closedir(directory) fuzz_track_closedir(directory)
#endif

#endif
