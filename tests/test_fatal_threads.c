/* Fatal errors on several threads at once (OpenMP workers, the loader thread): exactly one
 * message is printed and the process exits once with status 1; before, every thread printed
 * and called exit() while the others ran. The failing program runs in a child process whose
 * stderr is read back; it is tried several times, as the race is a matter of timing. */
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

enum { THREADS = 8, TRIES = 20 };

static void fail_on_every_thread(void) {
  omp_set_num_threads(THREADS);
#pragma omp parallel
  {
#pragma omp barrier
    FP_FATAL("deliberate failure on thread %d", omp_get_thread_num());
  }
}

/* Runs the failure in a child; returns the number of error lines it printed, *status its exit. */
static int error_lines(int *status) {
  int pipe_fds[2];
  FP_CHECK(pipe(pipe_fds) == 0, "pipe failed");
  pid_t child = fork();
  FP_CHECK(child >= 0, "fork failed");
  if (child == 0) {
    close(pipe_fds[0]);
    dup2(pipe_fds[1], STDERR_FILENO);
    fail_on_every_thread();
    _exit(0); /* not reached */
  }
  close(pipe_fds[1]);
  char text[8192];
  size_t used = 0;
  ssize_t got;
  while ((got = read(pipe_fds[0], text + used, sizeof text - 1 - used)) > 0) used += (size_t)got;
  text[used] = '\0';
  close(pipe_fds[0]);
  FP_CHECK(waitpid(child, status, 0) == child, "waitpid failed");
  int lines = 0;
  for (const char *p = text; (p = strstr(p, "error: deliberate failure")); p++) lines++;
  return lines;
}

int main(void) {
  int failures = 0;
  for (int t = 0; t < TRIES; t++) {
    int status = 0, lines = error_lines(&status);
    int exited_1 = WIFEXITED(status) && WEXITSTATUS(status) == 1;
    if (lines != 1 || !exited_1) {
      printf("try %d: %d error lines, %s %d: FAIL\n", t, lines,
             WIFEXITED(status) ? "exit status" : "signal",
             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
      failures++;
    }
  }
  printf("%d threads failing at once, %d tries: %s\n", THREADS, TRIES,
         failures ? "FAIL" : "one message and exit status 1 each time");
  return failures ? 1 : 0;
}
