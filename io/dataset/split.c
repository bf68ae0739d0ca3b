#include "split.h"

#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "shard.h"

typedef struct split_key {
  int64_t group_size; /* items holding the group's class; INT64_MAX for no class */
  int group;          /* the rarest present class, or -1 */
  uint64_t shuffle;
  int64_t index;
} split_key;

static int compare_keys(const void *pa, const void *pb) {
  const split_key *a = pa, *b = pb;
  if (a->group_size != b->group_size) return a->group_size < b->group_size ? -1 : 1;
  if (a->group != b->group) return a->group < b->group ? -1 : 1;
  if (a->shuffle != b->shuffle) return a->shuffle < b->shuffle ? -1 : 1;
  return a->index < b->index ? -1 : a->index > b->index;
}

void split_assign(const uint8_t *tags, int64_t count, int num_classes, double val_fraction,
                  double test_fraction, uint64_t seed, uint8_t *split) {
  FP_CHECK(val_fraction >= 0 && test_fraction >= 0 && val_fraction + test_fraction < 1,
           "split fractions val %g, test %g: each >= 0 and together < 1", val_fraction,
           test_fraction);
  int64_t *holders = fp_calloc((size_t)num_classes, sizeof *holders);
  for (int64_t i = 0; i < count; i++)
    for (int k = 0; k < num_classes; k++) holders[k] += tags[i * num_classes + k] != 0;
  split_key *keys = fp_malloc((size_t)count * sizeof *keys);
  for (int64_t i = 0; i < count; i++) {
    split_key key = {INT64_MAX, -1, shard_hash(seed, 0x53504c4954ULL /* "SPLIT" */, 0, (uint64_t)i),
                     i};
    for (int k = 0; k < num_classes; k++)
      if (tags[i * num_classes + k] && holders[k] < key.group_size) {
        key.group_size = holders[k];
        key.group = k;
      }
    keys[i] = key;
  }
  qsort(keys, (size_t)count, sizeof *keys, compare_keys);
  int64_t val_taken = 0, test_taken = 0;
  for (int64_t p = 0; p < count; p++) {
    uint8_t *slot = &split[keys[p].index];
    if (val_taken < (int64_t)ceil((double)(p + 1) * val_fraction - 1e-9)) {
      *slot = SPLIT_VAL;
      val_taken++;
    } else if (test_taken < (int64_t)ceil((double)(p + 1) * test_fraction - 1e-9)) {
      *slot = SPLIT_TEST;
      test_taken++;
    } else {
      *slot = SPLIT_TRAIN;
    }
  }
  free(keys);
  free(holders);
}
