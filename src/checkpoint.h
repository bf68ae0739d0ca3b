/* Checkpoints: one HDF5 file holding the parameters and BN statistics by name
 * (/params/<name>, /buffers/<name>), the optimiser state (/optimizer/exp_avg,
 * /optimizer/exp_avg_sq, flat in parameter-buffer order) and attributes arch,
 * classes, height, width, step, epoch, config (the resolved job file) and
 * class_names. Written to a temporary name and renamed when complete. */
#ifndef FP_CHECKPOINT_H
#define FP_CHECKPOINT_H

#include "optim.h"
#include "unet.h"

typedef struct checkpoint_info {
  unet_arch arch;
  int classes, height, width;
  long step, epoch; /* optimiser steps taken; epochs completed */
  double best_metric;
} checkpoint_info;

void checkpoint_save(const char *path, const unet *m, const optimizer *opt,
                     const checkpoint_info *info, const char *config_text,
                     const char *const *class_names);
/* Reads the attributes only. */
checkpoint_info checkpoint_peek(const char *path);
/* Loads weights and BN statistics into m (and the optimiser state into opt
 * when not NULL); refuses, naming the file and field, a checkpoint whose
 * arch or class count differs from the model. */
checkpoint_info checkpoint_load(const char *path, unet *m, optimizer *opt);

#endif
