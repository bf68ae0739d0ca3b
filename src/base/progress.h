/* Progress lines for long jobs: items done, rate and ETA. */
#ifndef FP_PROGRESS_H
#define FP_PROGRESS_H

typedef struct progress {
  const char *label;
  long total, done;
  double start_seconds;
} progress;

double progress_now(void); /* monotonic seconds */
void progress_start(progress *p, const char *label, long total_items);
void progress_advance(progress *p, long items);
/* Prints "[label] done/total img, x img/s, ETA h:mm:ss | message" to stdout. */
void progress_print(const progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
