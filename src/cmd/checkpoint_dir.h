/* The checkpoint directory of a training run (checkpoint.dir), on the rank that writes it: made
 * if missing, locked for the whole run so that a second `train` on the same directory stops at
 * once with an error naming it and the other run (instead of both interleaving steps.csv and
 * overwriting each other's checkpoints), and cleared of the temporary checkpoint files a killed
 * run left behind (safe under the lock: no other run writes there). */
#ifndef FP_CHECKPOINT_DIR_H
#define FP_CHECKPOINT_DIR_H

/* Returns the lock's descriptor, held until checkpoint_dir_close or the process ends. */
int checkpoint_dir_open(const char *directory);
void checkpoint_dir_close(int lock);

#endif
