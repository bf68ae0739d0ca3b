/* steps.csv, one line per optimiser step (rank 0 writes it): step, epoch, loss, lr, gradient
 * norm; with the Extended U-Net's branches the three loss terms; with loss scaling the scale the
 * step ran at and whether its update was skipped. Resuming keeps the lines of the steps the
 * checkpoint includes and drops any written after it, so the file never repeats a step. */
#ifndef FP_STEP_LOG_H
#define FP_STEP_LOG_H

#include <stdio.h>

#include "train_loss.h"

typedef struct step_log {
  FILE *file;
  char path[1100];
  int branches, loss_scaling; /* which optional columns the file has */
} step_log;

typedef struct step_row {
  long step, epoch; /* epoch 1-based */
  step_losses losses;
  double lr, grad_norm; /* grad_norm before clipping */
  double loss_scale;
  int skipped; /* the update was skipped: the gradients were not finite */
} step_row;

/* Creates (or, after a resume, rewrites with its first steps_kept steps) dir/steps.csv. */
void step_log_open(step_log *log, const char *dir, int branches, int loss_scaling, long steps_kept);
void step_log_write(step_log *log, const step_row *row);
void step_log_close(step_log *log);

#endif
