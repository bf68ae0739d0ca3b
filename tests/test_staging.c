/* Staged uploads (backend.h stage_input / tensor_from_staged), on $FP_TEST_BACKEND:
 *  - contract: staging a slot twice before it is taken, taking a slot that holds nothing, taking
 *    it into a tensor of another size, and a slot out of range each stop with exit status 1 and
 *    a message naming the slot (checked in child processes before any backend is opened);
 *  - data: for each compute type the backend runs, two slots staged then taken give bit for bit
 *    what tensor_from_nchw gives for the same floats; a slot restaged after stage_wait with new
 *    host contents gives the new contents, while a copy queued before it (reading the tensor
 *    the slot filled last) still sees the old ones, and the other slot's tensor is untouched. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "rng.h"
#include "test_backend.h"

enum { N = 3, C = 3, H = 17, W = 11 };

static int failures;

static void expect(int ok, const char *what) {
  if (!ok) {
    printf("FAIL: %s\n", what);
    failures++;
  }
}

/* ---------------------------------------------------------------- contract */

typedef enum misuse { STAGE_TWICE, TAKE_EMPTY, TAKE_WRONG_SIZE, SLOT_OUT_OF_RANGE } misuse;

static void commit_misuse(misuse m) {
  stage_state states[BACKEND_STAGES] = {{0}};
  tensor t = {.n = N, .c = C, .h = H, .w = W, .dtype = FP_F32};
  switch (m) {
  case STAGE_TWICE:
    backend_stage_begin(states, 1, tensor_count(&t));
    backend_stage_begin(states, 1, tensor_count(&t));
    break;
  case TAKE_EMPTY:
    backend_stage_take(states, 0, &t);
    break;
  case TAKE_WRONG_SIZE:
    backend_stage_begin(states, 0, tensor_count(&t) - 1);
    backend_stage_take(states, 0, &t);
    break;
  case SLOT_OUT_OF_RANGE:
    backend_stage_begin(states, BACKEND_STAGES, 1);
    break;
  }
}

static void check_misuse(misuse m, const char *what, const char *needle) {
  int pipe_fds[2];
  FP_CHECK(pipe(pipe_fds) == 0, "pipe failed");
  fflush(stdout);
  pid_t pid = fork();
  FP_CHECK(pid >= 0, "fork failed");
  if (pid == 0) {
    close(pipe_fds[0]);
    dup2(pipe_fds[1], STDERR_FILENO);
    commit_misuse(m);
    _exit(0);
  }
  close(pipe_fds[1]);
  char message[1024] = {0};
  size_t got = 0;
  ssize_t n;
  while (got + 1 < sizeof message &&
         (n = read(pipe_fds[0], message + got, sizeof message - 1 - got)) > 0)
    got += (size_t)n;
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  int stopped = WIFEXITED(status) && WEXITSTATUS(status) == 1 && strstr(message, needle);
  if (!stopped) printf("  %s: status %d, stderr: %s\n", what, status, message);
  expect(stopped, what);
}

static void check_contract(void) {
  check_misuse(STAGE_TWICE, "a slot staged twice", "slot 1 is staged again");
  check_misuse(TAKE_EMPTY, "an empty slot taken", "slot 0 holds nothing");
  check_misuse(TAKE_WRONG_SIZE, "a slot taken into another size", "slot 0 holds 1682 floats");
  check_misuse(SLOT_OUT_OF_RANGE, "a slot out of range", "slot 2 of 2");
}

/* -------------------------------------------------------------------- data */

static void fill_random(float *x, size_t count, uint64_t seed) {
  rng r;
  rng_seed(&r, seed);
  for (size_t i = 0; i < count; i++) x[i] = (float)(rng_uniform(&r) * 4.0 - 2.0);
}

/* t as host NCHW floats after tensor_from_nchw of `values`: the expected result */
static void reference(const backend *be, tensor *scratch, const float *values, float *out) {
  be->tensor_from_nchw(scratch, values);
  be->tensor_to_nchw(scratch, out);
}

static void expect_same(const backend *be, const tensor *t, const float *want, float *got,
                        const char *what) {
  be->tensor_to_nchw(t, got);
  expect(!memcmp(got, want, tensor_count(t) * sizeof(float)), what);
}

static void check_type(const backend *be, fp_dtype type) {
  tensor t0 = {.n = N, .c = C, .h = H, .w = W, .dtype = type}, t1 = t0, scratch = t0, copy = t0;
  be->tensor_alloc(&t0);
  be->tensor_alloc(&t1);
  be->tensor_alloc(&scratch);
  be->tensor_alloc(&copy);
  const size_t count = tensor_count(&t0), bytes = count * sizeof(float);
  float *host[2] = {be->host_alloc(bytes), be->host_alloc(bytes)};
  float *want[3], *got = fp_malloc(bytes);
  for (int i = 0; i < 3; i++) want[i] = fp_malloc(bytes);
  fill_random(host[0], count, 1);
  fill_random(host[1], count, 2);
  reference(be, &scratch, host[0], want[0]);
  reference(be, &scratch, host[1], want[1]);

  be->stage_input(0, host[0], count);
  be->stage_input(1, host[1], count);
  be->tensor_from_staged(&t0, 0);
  be->tensor_from_staged(&t1, 1);
  char what[128];
  snprintf(what, sizeof what, "%s: slot 0 as tensor_from_nchw", fp_dtype_name(type));
  expect_same(be, &t0, want[0], got, what);
  snprintf(what, sizeof what, "%s: slot 1 as tensor_from_nchw", fp_dtype_name(type));
  expect_same(be, &t1, want[1], got, what);

  /* slot 0 again, new contents; a copy of t0 queued before must still read the old ones */
  be->stage_wait(0);
  fill_random(host[0], count, 3);
  reference(be, &scratch, host[0], want[2]);
  be->copy(copy.data, t0.data, type, count);
  be->stage_input(0, host[0], count);
  be->tensor_from_staged(&t0, 0);
  snprintf(what, sizeof what, "%s: slot 0 restaged after stage_wait", fp_dtype_name(type));
  expect_same(be, &t0, want[2], got, what);
  snprintf(what, sizeof what, "%s: a copy queued before the restaged slot", fp_dtype_name(type));
  expect_same(be, &copy, want[0], got, what);
  snprintf(what, sizeof what, "%s: slot 1's tensor untouched", fp_dtype_name(type));
  expect_same(be, &t1, want[1], got, what);
  be->stage_wait(0);

  for (int i = 0; i < 3; i++) free(want[i]);
  free(got);
  be->host_release(host[0]);
  be->host_release(host[1]);
  be->tensor_release(&t0);
  be->tensor_release(&t1);
  be->tensor_release(&scratch);
  be->tensor_release(&copy);
}

int main(void) {
  check_contract();
  const backend *be = test_backend();
  const fp_dtype types[] = {FP_F32, FP_BF16, FP_F16};
  for (size_t i = 0; i < sizeof types / sizeof *types; i++)
    if (test_precision_runs(be, types[i])) check_type(be, types[i]);
  printf("%s: staged uploads on %s\n", failures ? "FAIL" : "ok", be->name);
  return failures ? 1 : 0;
}
