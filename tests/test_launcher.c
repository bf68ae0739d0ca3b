/* launcher_local_rank: the first of OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID and
 * MPI_LOCALRANKID that is set names the rank's place on its node; none set gives -1; a value
 * that is not a non-negative integer stops the program (exit 1) naming the variable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "launcher.h"

static const char *const variables[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID",
                                        "MPI_LOCALRANKID"};
enum { VARIABLES = sizeof variables / sizeof *variables };

static int failures;

static void expect(int got, int want, const char *what) {
  if (got != want) {
    printf("FAIL %s: %d, expected %d\n", what, got, want);
    failures++;
  }
}

static void clear(void) {
  for (int i = 0; i < VARIABLES; i++) unsetenv(variables[i]);
}

/* The exit status of launcher_local_rank in a child process with `name`=`value`. */
static int child_status(const char *name, const char *value) {
  fflush(stdout);
  pid_t child = fork();
  FP_CHECK(child >= 0, "fork failed");
  if (child == 0) {
    clear();
    setenv(name, value, 1);
    freopen("/dev/null", "w", stderr);
    launcher_local_rank();
    _exit(0);
  }
  int status = 0;
  FP_CHECK(waitpid(child, &status, 0) == child, "waitpid failed");
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(void) {
  clear();
  expect(launcher_local_rank(), -1, "no variable set");
  for (int i = 0; i < VARIABLES; i++) {
    clear();
    setenv(variables[i], "3", 1);
    expect(launcher_local_rank(), 3, variables[i]);
  }
  /* the earlier one in the list wins: mpirun inside a Slurm allocation sets both */
  clear();
  setenv("SLURM_LOCALID", "1", 1);
  setenv("MPI_LOCALRANKID", "2", 1);
  expect(launcher_local_rank(), 1, "SLURM_LOCALID before MPI_LOCALRANKID");
  setenv("OMPI_COMM_WORLD_LOCAL_RANK", "0", 1);
  expect(launcher_local_rank(), 0, "OMPI_COMM_WORLD_LOCAL_RANK before SLURM_LOCALID");
  expect(child_status("MPI_LOCALRANKID", "-1"), 1, "MPI_LOCALRANKID=-1 refused");
  expect(child_status("SLURM_LOCALID", "2x"), 1, "SLURM_LOCALID=2x refused");
  printf("launcher_local_rank: %s\n", failures ? "FAILED" : "all cases as expected");
  return failures ? 1 : 0;
}
