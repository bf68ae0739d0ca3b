#include "step_log.h"

#include "check.h"
#include "durable.h"

void step_log_open(step_log *log, const char *dir, int branches, int loss_scaling,
                   long steps_kept) {
  int n = snprintf(log->path, sizeof log->path, "%s/steps.csv", dir);
  FP_CHECK(n > 0 && (size_t)n < sizeof log->path, "checkpoint.dir too long: %s", dir);
  log->branches = branches;
  log->loss_scaling = loss_scaling;
  char temporary[1200];
  snprintf(temporary, sizeof temporary, "%s.tmp", log->path);
  FILE *out = fopen(temporary, "w");
  if (!out) FP_FATAL("cannot create %s", temporary);
  fprintf(out, "step,epoch,loss,lr,grad_norm%s%s\n",
          branches ? ",segmentation_loss,class_loss,box_loss" : "",
          loss_scaling ? ",loss_scale,skipped" : "");
  FILE *old = steps_kept > 0 ? fopen(log->path, "r") : NULL;
  if (old) {
    char line[1024]; /* a row is at most ~200 characters */
    long copied = 0;
    if (fgets(line, sizeof line, old))
      while (copied < steps_kept && fgets(line, sizeof line, old)) {
        fputs(line, out);
        copied++;
      }
    fclose(old);
  }
  if (fclose(out) != 0) FP_FATAL("cannot write %s", temporary);
  durable_rename(temporary, log->path);
  log->file = fopen(log->path, "a");
  if (!log->file) FP_FATAL("cannot append to %s", log->path);
}

void step_log_write(step_log *log, const step_row *row) {
  fprintf(log->file, "%ld,%ld,%.9g,%.9g,%.9g", row->step, row->epoch, row->losses.total, row->lr,
          row->grad_norm);
  if (log->branches)
    fprintf(log->file, ",%.9g,%.9g,%.9g", row->losses.segmentation, row->losses.class_loss,
            row->losses.box_loss);
  if (log->loss_scaling) fprintf(log->file, ",%.17g,%d", row->loss_scale, row->skipped);
  fputc('\n', log->file);
  fflush(log->file);
}

void step_log_close(step_log *log) {
  if (log->file) fclose(log->file);
  log->file = NULL;
}
