#include "launcher.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "check.h"

int launcher_local_rank(void) {
  static const char *const variables[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID",
                                          "MPI_LOCALRANKID"};
  for (size_t i = 0; i < sizeof variables / sizeof *variables; i++) {
    const char *text = getenv(variables[i]);
    if (!text || !*text) continue;
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    FP_CHECK(errno == 0 && *end == '\0' && value >= 0 && value <= INT_MAX,
             "%s=%s is not a local rank", variables[i], text);
    return (int)value;
  }
  return -1;
}
