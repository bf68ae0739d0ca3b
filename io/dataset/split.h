/* Deterministic train/val/test assignment stratified by class presence. */
#ifndef FP_SPLIT_H
#define FP_SPLIT_H

#include <stdint.h>

enum { SPLIT_TRAIN = 0, SPLIT_VAL = 1, SPLIT_TEST = 2 };

/* tags[count][num_classes] multi-hot. Each item is grouped by its rarest
 * present class (fewest items holding it; ties to the lower id); groups are
 * visited rarest first, items within a group in an order shuffled by `seed`,
 * and along that sequence position p goes to val while the val count is below
 * ceil((p+1) * val_fraction), else to test by the same rule, else to train.
 * So every group, rare ones first, gets its share of val and test. */
void split_assign(const uint8_t *tags, int64_t count, int num_classes, double val_fraction,
                  double test_fraction, uint64_t seed, uint8_t *split);

#endif
