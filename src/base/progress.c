#include "progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

double progress_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_start(progress *p, const char *label, long total_items) {
  p->label = label;
  p->total = total_items;
  p->done = 0;
  p->start_seconds = progress_now();
}

void progress_advance(progress *p, long items) {
  p->done += items;
}

void progress_print(const progress *p, const char *fmt, ...) {
  double elapsed = progress_now() - p->start_seconds;
  double rate = elapsed > 0 ? (double)p->done / elapsed : 0.0;
  long eta = rate > 0 ? (long)((double)(p->total - p->done) / rate) : 0;
  printf("[%s] %ld/%ld img, %.2f img/s, ETA %ld:%02ld:%02ld | ", p->label, p->done, p->total, rate,
         eta / 3600, eta / 60 % 60, eta % 60);
  va_list args;
  va_start(args, fmt);
  vprintf(fmt, args);
  va_end(args);
  printf("\n");
  fflush(stdout);
}
