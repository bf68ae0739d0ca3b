/* How an epoch's images are ordered and split across ranks. Every rank
 * computes the same permutation from (seed, epoch); the global batch is
 * batch_size * world_size and in batch b rank r takes permutation positions
 * [b*g + r*batch_size, +batch_size). So N ranks at batch b together consume
 * exactly the images one rank with batch N*batch_size consumes at batch b,
 * in the same order (and one rank with batch_size at batches N*b..N*b+N-1).
 */
#ifndef FP_SHARD_H
#define FP_SHARD_H

#include <stdint.h>

/* A counter-based hash (splitmix64 rounds): the same inputs give the same
 * 64 bits in any thread, process or rank. */
uint64_t shard_hash(uint64_t seed, uint64_t a, uint64_t b, uint64_t c);
/* shard_hash mapped to [0, 1). */
double shard_uniform(uint64_t seed, uint64_t a, uint64_t b, uint64_t c);

/* floor(count / (batch_size * world_size)): the last partial batch is dropped. */
int64_t shard_batches_per_epoch(int64_t count, int batch_size, int world_size);

/* order[0..count) = a permutation of 0..count-1 drawn from (seed, epoch), or
 * the identity when shuffle is 0. */
void shard_permutation(int64_t *order, int64_t count, uint64_t seed, int epoch, int shuffle);

/* Permutation position of item j (0 <= j < batch_size) of rank `rank` in
 * batch `batch`. */
int64_t shard_position(int64_t batch, int rank, int j, int batch_size, int world_size);

#endif
