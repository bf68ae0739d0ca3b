#include "collective_checks.h"

#include "check.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

static int failures;

__attribute__((format(printf, 3, 4))) static void fail(collective *c, int line, const char *fmt,
                                                       ...) {
  va_list args;
  va_start(args, fmt);
  printf("rank %d: FAIL (collective_checks.c:%d) ", collective_rank(c), line);
  vprintf(fmt, args);
  printf("\n");
  fflush(stdout);
  va_end(args);
  failures++;
}

#define EXPECT(c, condition, ...)                                                                  \
  do {                                                                                             \
    if (!(condition)) fail((c), __LINE__, __VA_ARGS__);                                            \
  } while (0)

/* Integer-valued, so every sum is exact in float whatever the order: rank r holds
 * (r + 1) * (i % 1000 + 1 + offset), and the sum over n ranks is n(n+1)/2 times the second factor.
 */
static float integer_value(int rank, size_t i, size_t offset) {
  return (float)((rank + 1) * (int)(i % 1000 + 1 + offset));
}

static float random_value(int rank, size_t i) {
  uint64_t z = ((uint64_t)rank << 40) ^ (uint64_t)i;
  z += 0x9e3779b97f4a7c15ULL; /* splitmix64 */
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return (float)((double)(z >> 11) * 0x1p-52 - 1.0);
}

static int is_power_of_two(int n) {
  return n > 0 && (n & (n - 1)) == 0;
}

static void *upload_copy(const test_memory *memory, const void *host, size_t bytes) {
  void *copy = memory->allocate(bytes);
  memory->upload(copy, host, bytes);
  return copy;
}

/* Compares buffer (downloaded) with the exact sum or mean of integer_value over the ranks. The
 * mean is sum / n, exact when n is a power of two (1, 2 and 4 ranks in ctest); otherwise NCCL's
 * ncclAvg (a pre-multiplication by 1/n) may round differently from MPI's division, by an ulp. */
static void check_integer_result(collective *c, const float *buffer, size_t count, size_t offset,
                                 int mean, const char *what) {
  const int ranks = collective_size(c);
  const float triangle = (float)(ranks * (ranks + 1) / 2);
  const float tolerance = is_power_of_two(ranks) ? 0.0f : 0x1p-22f;
  for (size_t i = 0; i < count; i++) {
    float sum = (float)(i % 1000 + 1 + offset) * triangle;
    float expected = mean ? sum / (float)ranks : sum;
    if (fabsf(buffer[i] - expected) > tolerance * fabsf(expected)) {
      fail(c, __LINE__, "%s, count %zu: element %zu is %.9g, expected %.9g", what, count, i,
           (double)buffer[i], (double)expected);
      return;
    }
  }
}

static void check_integer_reduction(collective *c, const test_memory *memory, size_t count,
                                    int mean) {
  float *host = fp_malloc(count * sizeof(float));
  for (size_t i = 0; i < count; i++) host[i] = integer_value(collective_rank(c), i, 0);
  float *buffer = upload_copy(memory, host, count * sizeof(float));
  if (mean)
    collective_allreduce_mean(c, buffer, count);
  else
    collective_allreduce_sum(c, buffer, count);
  memory->download(host, buffer, count * sizeof(float));
  check_integer_result(c, host, count, 0, mean, mean ? "integer mean" : "integer sum");
  memory->release(buffer);
  free(host);
}

/* Random floats: against the double-precision sum of every rank's values (each rank can generate
 * them all), within the float rounding of an n-term sum in any order. */
static void check_random_reduction(collective *c, const test_memory *memory, size_t count,
                                   int mean) {
  const int ranks = collective_size(c);
  float *host = fp_malloc(count * sizeof(float));
  for (size_t i = 0; i < count; i++) host[i] = random_value(collective_rank(c), i);
  float *buffer = upload_copy(memory, host, count * sizeof(float));
  if (mean)
    collective_allreduce_mean(c, buffer, count);
  else
    collective_allreduce_sum(c, buffer, count);
  memory->download(host, buffer, count * sizeof(float));
  for (size_t i = 0; i < count; i++) {
    double exact = 0, magnitude = 0;
    for (int rank = 0; rank < ranks; rank++) {
      exact += random_value(rank, i);
      magnitude += fabs((double)random_value(rank, i));
    }
    if (mean) {
      exact /= ranks;
      magnitude /= ranks;
    }
    if (fabs(host[i] - exact) > ranks * 0x1p-23 * magnitude) {
      fail(c, __LINE__, "random %s, count %zu: element %zu is %.9g, expected %.9g",
           mean ? "mean" : "sum", count, i, (double)host[i], exact);
      break;
    }
  }
  memory->release(buffer);
  free(host);
}

/* Many started means outstanding at once, a blocking sum issued among them, and each rank
 * waiting in its own order (reversed on odd ranks, a stride-5 walk on even ones). */
static void check_outstanding_requests(collective *c, const test_memory *memory) {
  static const size_t counts[] = {0, 1, 3, 17, 1000, 4097, 65541, 5, 262147, 2, 999, 31};
  enum { requests_in_flight = sizeof counts / sizeof *counts, blocking_count = 333 };
  const int rank = collective_rank(c);
  float *buffers[requests_in_flight];
  collective_request *requests[requests_in_flight];
  float blocking_host[blocking_count];
  for (size_t i = 0; i < blocking_count; i++) blocking_host[i] = integer_value(rank, i, 7);
  float *blocking = upload_copy(memory, blocking_host, sizeof blocking_host);
  for (int k = 0; k < requests_in_flight; k++) {
    float *host = fp_malloc(counts[k] * sizeof(float));
    for (size_t i = 0; i < counts[k]; i++) host[i] = integer_value(rank, i, (size_t)k);
    buffers[k] = upload_copy(memory, host, counts[k] * sizeof(float));
    free(host);
    requests[k] = collective_allreduce_mean_start(c, buffers[k], counts[k]);
    if (k == requests_in_flight / 2) collective_allreduce_sum(c, blocking, blocking_count);
  }
  memory->download(blocking_host, blocking, sizeof blocking_host);
  check_integer_result(c, blocking_host, blocking_count, 7, 0, "blocking sum among started ones");
  memory->release(blocking);
  for (int j = 0; j < requests_in_flight; j++) {
    int k = rank % 2 ? requests_in_flight - 1 - j : (j * 5 + rank) % requests_in_flight;
    collective_wait(c, requests[k]);
    float *host = fp_malloc(counts[k] * sizeof(float));
    memory->download(host, buffers[k], counts[k] * sizeof(float));
    char what[64];
    snprintf(what, sizeof what, "started mean %d waited %d-th", k, j);
    check_integer_result(c, host, counts[k], (size_t)k, 1, what);
    free(host);
    memory->release(buffers[k]);
  }
}

static unsigned char broadcast_pattern(size_t i, int root) {
  return (unsigned char)(i * 7 + (size_t)root * 13 + 1);
}

static void check_broadcast(collective *c, const test_memory *memory, size_t bytes, int root) {
  unsigned char *host = fp_malloc(bytes);
  for (size_t i = 0; i < bytes; i++)
    host[i] = collective_rank(c) == root ? broadcast_pattern(i, root) : 0xEE;
  void *buffer = upload_copy(memory, host, bytes);
  collective_broadcast(c, buffer, bytes, root);
  memory->download(host, buffer, bytes);
  for (size_t i = 0; i < bytes; i++)
    if (host[i] != broadcast_pattern(i, root)) {
      fail(c, __LINE__, "broadcast of %zu bytes from %d: byte %zu is %d, expected %d", bytes, root,
           i, host[i], broadcast_pattern(i, root));
      break;
    }
  memory->release(buffer);
  free(host);
}

static void check_host_helpers(collective *c) {
  const int rank = collective_rank(c), ranks = collective_size(c);
  double values[3] = {rank + 0.5, -(double)rank, 0.25};
  collective_allreduce_sum_host_doubles(c, values, 3);
  const double triangle = ranks * (ranks - 1) / 2.0;
  EXPECT(c,
         values[0] == triangle + 0.5 * ranks && values[1] == -triangle && values[2] == 0.25 * ranks,
         "host doubles sum: %g %g %g", values[0], values[1], values[2]);
  collective_allreduce_sum_host_doubles(c, NULL, 0);

  EXPECT(c, collective_all_equal_u64(c, 0x8000000000000001ULL), "equal values reported unequal");
  EXPECT(c, collective_all_equal_u64(c, 0), "equal zeros reported unequal");
  EXPECT(c, collective_all_equal_u64(c, ~0ULL), "equal all-ones reported unequal");
  const int alone = ranks == 1;
  EXPECT(c, collective_all_equal_u64(c, (unsigned long long)rank) == alone,
         "the rank number reported %s", alone ? "unequal" : "equal");
  EXPECT(c, collective_all_equal_u64(c, rank == ranks - 1 ? 1ULL << 63 : 0) == alone,
         "values differing in the top bit on the last rank reported %s",
         alone ? "unequal" : "equal");
  EXPECT(c, collective_all_equal_u64(c, rank == 0 ? ~0ULL : ~0ULL - 1) == alone,
         "values differing in the lowest bit on rank 0 reported %s", alone ? "unequal" : "equal");
}

int run_collective_checks(collective *c, const test_memory *memory) {
  failures = 0;
  static const size_t counts[] = {0, 1, 2, 7, 1001, 65537, (1u << 20) + 3};
  for (size_t k = 0; k < sizeof counts / sizeof *counts; k++)
    for (int mean = 0; mean <= 1; mean++) {
      check_integer_reduction(c, memory, counts[k], mean);
      check_random_reduction(c, memory, counts[k], mean);
    }
  check_outstanding_requests(c, memory);
  const int ranks = collective_size(c);
  check_broadcast(c, memory, 0, 0);
  check_broadcast(c, memory, 13, ranks - 1);
  check_broadcast(c, memory, (1u << 20) + 1, ranks / 2);
  check_host_helpers(c);
  collective_barrier(c);
  return failures;
}

int check_world_size(collective *c, const char *expected_text) {
  char *end = NULL;
  errno = 0;
  long expected = strtol(expected_text, &end, 10);
  FP_CHECK(errno == 0 && *end == '\0' && expected > 0, "rank count '%s' is not a positive number",
           expected_text);
  failures = 0;
  EXPECT(c, collective_size(c) == expected, "world of %d ranks, launched with %ld",
         collective_size(c), expected);
  EXPECT(c, collective_rank(c) >= 0 && collective_rank(c) < collective_size(c), "rank %d of %d",
         collective_rank(c), collective_size(c));
  return failures;
}
