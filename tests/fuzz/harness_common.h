/* Shared by the libFuzzer harnesses (tests/fuzz/README.md). */
#ifndef FP_HARNESS_COMMON_H
#define FP_HARNESS_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Runs body(context). Returns 0 when it returns, 1 when it stops with FP_FATAL: the
 * clean rejection of bad input. Then the fatal hook has jumped back here and
 * what body allocated or opened and did not free or close (harness_track.h) is released. */
int fuzz_guarded(void (*body)(void *context), void *context);

/* This process's temporary directory (under $TMPDIR, else /tmp), made on first use and
 * removed with its contents at exit. */
const char *fuzz_tmp_dir(void);
/* Writes data[size] to fuzz_tmp_dir()/name (name may hold '/': the directories are made)
 * and returns the path (static storage, valid until the next call). */
const char *fuzz_write_file(const char *name, const void *data, size_t size);

/* Splits data at the first line equal to separator (e.g. "--csv--"): the text before
 * it (without the newline) and after it. Returns 0, with *rest_size 0, when there is
 * no such line. */
int fuzz_split(const uint8_t *data, size_t size, const char *separator, size_t *first_size,
               const uint8_t **rest, size_t *rest_size);

/* Aborts (a crash the fuzzer reports) with the message when condition is false: for
 * properties a parser promises beyond not crashing. */
void fuzz_require(int condition, const char *what);

#endif
