/* All-reduce bandwidth of collective/ over MPI, in nccl-tests' terms: for S bytes reduced in t
 * seconds by n ranks, algbw = S / t and busbw = algbw * 2(n-1)/n (what each rank's link carries
 * in a ring all-reduce, so it is comparable across rank counts).
 *
 * usage: mpirun -np N bench_allreduce [--min-bytes 4096] [--max-bytes 268435456] [--seconds 1] */
#include "check.h"
#include "collective.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static double now_seconds(void) {
  struct timespec ts;
  FP_CHECK(clock_gettime(CLOCK_MONOTONIC, &ts) == 0, "clock_gettime failed");
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double parse_positive(const char *option, const char *text) {
  char *end = NULL;
  errno = 0;
  double value = strtod(text, &end);
  FP_CHECK(errno == 0 && end != text && *end == '\0' && value > 0,
           "%s %s: expected a positive number", option, text);
  return value;
}

/* The mean over ranks of each rank's seconds, so every rank agrees on iteration counts. */
static double mean_over_ranks(collective *c, double seconds) {
  collective_allreduce_sum_host_doubles(c, &seconds, 1);
  return seconds / collective_size(c);
}

static void check_sum(collective *c, float *buffer, size_t count) {
  const int ranks = collective_size(c);
  for (size_t i = 0; i < count; i++) buffer[i] = (float)(collective_rank(c) + 1);
  collective_allreduce_sum(c, buffer, count);
  const float expected = (float)(ranks * (ranks + 1) / 2);
  for (size_t i = 0; i < count; i++)
    FP_CHECK(buffer[i] == expected, "element %zu of %zu: %g, expected %g", i, count,
             (double)buffer[i], (double)expected);
}

int main(int argc, char **argv) {
  double min_bytes = 4096, max_bytes = 256.0 * 1024 * 1024, seconds_per_size = 1.0;
  for (int i = 1; i < argc; i++) {
    FP_CHECK(i + 1 < argc,
             "%s needs a value (usage: bench_allreduce [--min-bytes B] "
             "[--max-bytes B] [--seconds S])",
             argv[i]);
    if (!strcmp(argv[i], "--min-bytes"))
      min_bytes = parse_positive(argv[i], argv[i + 1]);
    else if (!strcmp(argv[i], "--max-bytes"))
      max_bytes = parse_positive(argv[i], argv[i + 1]);
    else if (!strcmp(argv[i], "--seconds"))
      seconds_per_size = parse_positive(argv[i], argv[i + 1]);
    else
      FP_FATAL("unknown option %s", argv[i]);
    i++;
  }
  FP_CHECK(min_bytes >= sizeof(float) && min_bytes <= max_bytes,
           "need 4 <= --min-bytes <= --max-bytes");

  collective *c = collective_init(COLLECTIVE_MPI);
  const int ranks = collective_size(c);
  const double bus_factor = 2.0 * (ranks - 1) / ranks;
  float *buffer = fp_malloc((size_t)max_bytes);
  if (collective_rank(c) == 0) {
    printf("# collective=%s ranks=%d, blocking in-place float sum, %.2g s per size\n",
           collective_name(c), ranks, seconds_per_size);
    printf("%12s %10s %6s %12s %12s %12s\n", "bytes", "count", "iters", "time_us", "algbw_GB/s",
           "busbw_GB/s");
  }
  for (double bytes = min_bytes; bytes <= max_bytes; bytes *= 2) {
    const size_t count = (size_t)bytes / sizeof(float);
    check_sum(c, buffer, count);
    /* Zeros from here on: repeated in-place sums stay finite (no overflow, no denormals). */
    memset(buffer, 0, count * sizeof(float));
    double start = now_seconds();
    for (int warm_up = 0; warm_up < 2; warm_up++) collective_allreduce_sum(c, buffer, count);
    const double warm_up_each = mean_over_ranks(c, (now_seconds() - start) / 2);
    double wanted = seconds_per_size / warm_up_each;
    const int iterations = wanted < 5 ? 5 : wanted > 10000 ? 10000 : (int)wanted;
    collective_barrier(c);
    start = now_seconds();
    for (int i = 0; i < iterations; i++) collective_allreduce_sum(c, buffer, count);
    const double each = mean_over_ranks(c, (now_seconds() - start) / iterations);
    const double actual_bytes = (double)(count * sizeof(float));
    if (collective_rank(c) == 0) {
      printf("%12.0f %10zu %6d %12.1f %12.3f %12.3f\n", actual_bytes, count, iterations, each * 1e6,
             actual_bytes / each / 1e9, actual_bytes / each / 1e9 * bus_factor);
      fflush(stdout);
    }
  }
  free(buffer);
  collective_destroy(c);
  return 0;
}
