/* Fatal errors on several threads at once (OpenMP workers, the loader thread): exactly one
 * message is printed and the process exits once with status 1; before, every thread printed
 * and called exit() while the others ran. The failing program runs in a child process whose
 * stderr is read back; it is tried several times, as the race is a matter of timing.
 * Also the fatal context (fp_set_fatal_context): its line follows the message of a failure on
 * the thread that set it, and only there, and not once cleared. */
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

/* Runs fail() in a child; returns what it printed on stderr (in text), *status its exit. */
static void run_failing_child(void (*fail)(void), char *text, size_t size, int *status) {
  int pipe_fds[2];
  FP_CHECK(pipe(pipe_fds) == 0, "pipe failed");
  fflush(stdout); /* else the child's exit prints what the parent has buffered again */
  pid_t child = fork();
  FP_CHECK(child >= 0, "fork failed");
  if (child == 0) {
    close(pipe_fds[0]);
    dup2(pipe_fds[1], STDERR_FILENO);
    fail();
    _exit(0); /* not reached */
  }
  close(pipe_fds[1]);
  size_t used = 0;
  ssize_t got;
  while ((got = read(pipe_fds[0], text + used, size - 1 - used)) > 0) used += (size_t)got;
  text[used] = '\0';
  close(pipe_fds[0]);
  FP_CHECK(waitpid(child, status, 0) == child, "waitpid failed");
}

/* The number of error lines the child printed, *status its exit. */
static int error_lines(int *status) {
  char text[8192];
  run_failing_child(fail_on_every_thread, text, sizeof text, status);
  int lines = 0;
  for (const char *p = text; (p = strstr(p, "error: deliberate failure")); p++) lines++;
  return lines;
}

#define CONTEXT "recording a deliberate context; to avoid it: do not"

static void fail_in_context(void) {
  fp_set_fatal_context(CONTEXT);
  FP_FATAL("deliberate failure in a context");
}

static void fail_after_context_cleared(void) {
  fp_set_fatal_context(CONTEXT);
  fp_set_fatal_context(NULL);
  FP_FATAL("deliberate failure after the context was cleared");
}

static void fail_on_another_thread(void) {
  fp_set_fatal_context(CONTEXT);
#pragma omp parallel num_threads(2)
  if (omp_get_thread_num() == 1) FP_FATAL("deliberate failure on a thread without the context");
  pause(); /* the failing thread exits the process */
}

/* 0 when the child's stderr has the context line exactly when expected. */
static int check_context(const char *what, void (*fail)(void), int expected) {
  char text[8192];
  int status = 0;
  run_failing_child(fail, text, sizeof text, &status);
  int found = strstr(text, "error: deliberate failure") != NULL &&
              strstr(text, "  (while " CONTEXT ")\n") != NULL;
  int ok = found == expected && WIFEXITED(status) && WEXITSTATUS(status) == 1;
  printf("%s: context line %s, exit %d: %s\n", what, found ? "printed" : "absent",
         WIFEXITED(status) ? WEXITSTATUS(status) : -1, ok ? "ok" : "FAIL");
  if (!ok) printf("its stderr:\n%s", text);
  return !ok;
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
  failures += check_context("failure in a context", fail_in_context, 1);
  failures += check_context("failure after the context was cleared", fail_after_context_cleared, 0);
  failures += check_context("failure on a thread that set no context", fail_on_another_thread, 0);
  return failures ? 1 : 0;
}
