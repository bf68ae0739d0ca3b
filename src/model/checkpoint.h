/* Checkpoints: one HDF5 file holding the parameters and BN statistics by name
 * (/params/<name>, /buffers/<name>), the optimiser state by name too
 * (/optimizer/exp_avg/<name>, /optimizer/exp_avg_sq/<name>; format 3 — formats 1 and 2 stored
 * them flat in parameter-buffer order, still read) and attributes arch,
 * classes, height, width, branches, inject_blocks, branch_dropout, step, epoch, config (the
 * resolved job file) and class_names. Written to a temporary name and renamed when complete. */
#ifndef FP_CHECKPOINT_H
#define FP_CHECKPOINT_H

#include <stdint.h>

#include "optim.h"
#include "unet.h"

/* The data order and augmentation are pure functions of (seed, epoch, image), so the step and
 * the global batch size fix the position in the data: no random-generator state is stored. */
typedef struct checkpoint_info {
  unet_arch arch;
  int classes, height, width;
  branch_config branches; /* mode none in checkpoints from before the branches */
  long step, epoch;       /* optimiser steps taken; epochs completed */
  double best_metric;
  long best_epoch;   /* the epoch (1-based) best_metric was reached in, 0 = none (or format 1) */
  long global_batch; /* images per step over all ranks (0: unknown, format 1) */
  double epoch_loss_sum;    /* sum of the step losses of the unfinished epoch */
  int64_t *epoch_confusion; /* [classes*classes] training confusion of the unfinished epoch, or
                               NULL; read back only when not NULL */
} checkpoint_info;

void checkpoint_save(const char *path, const unet *m, const optimizer *opt,
                     const checkpoint_info *info, const char *config_text,
                     const char *const *class_names);
/* Reads the attributes only (epoch_confusion is left NULL). */
checkpoint_info checkpoint_peek(const char *path);
/* Loads weights and BN statistics into m (and the optimiser state into opt
 * when not NULL, and the unfinished epoch's confusion into epoch_confusion when not NULL);
 * refuses, naming the file and field, a checkpoint whose arch or class count differs from the
 * model. */
checkpoint_info checkpoint_load(const char *path, unet *m, optimizer *opt,
                                int64_t *epoch_confusion);

#endif
