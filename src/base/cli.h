/* Command-line flags of the form `--name value`, table-driven. */
#ifndef FP_CLI_H
#define FP_CLI_H

#include <stdio.h>

typedef enum cli_type { CLI_INT, CLI_STRING, CLI_FLAG } cli_type;

typedef struct cli_option {
  const char *name;
  cli_type type;
  void *value; /* int* for CLI_INT and CLI_FLAG, const char** for CLI_STRING */
  long min, max;
} cli_option;

/* Parses flags from argv[1] on; `--help` prints usage to stdout and exits 0;
 * an unknown flag, a missing or malformed value or one out of range prints an
 * error naming the flag and exits 2. Stops at the first argument that is not a
 * flag and returns its index (argc if none). */
int cli_parse(int argc, char **argv, const cli_option *options, size_t option_count,
              void (*usage)(FILE *out));

#endif
