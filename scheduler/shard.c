#include "shard.h"

#include "check.h"

static uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t shard_hash(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  return splitmix64(splitmix64(splitmix64(splitmix64(seed) ^ a) ^ b) ^ c);
}

double shard_uniform(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  return (double)(shard_hash(seed, a, b, c) >> 11) * 0x1.0p-53;
}

int64_t shard_batches_per_epoch(int64_t count, int batch_size, int world_size) {
  FP_CHECK(batch_size > 0 && world_size > 0, "batch size %d, world size %d", batch_size,
           world_size);
  return count / ((int64_t)batch_size * world_size);
}

void shard_permutation(int64_t *order, int64_t count, uint64_t seed, int epoch, int shuffle) {
  for (int64_t i = 0; i < count; i++) order[i] = i;
  if (!shuffle) return;
  /* Fisher-Yates; the draw for step i depends only on (seed, epoch, i). */
  for (int64_t i = count - 1; i > 0; i--) {
    uint64_t draw = shard_hash(seed, 0x5348554646ULL /* "SHUFF" */, (uint64_t)epoch, (uint64_t)i);
    int64_t j = (int64_t)(draw % (uint64_t)(i + 1));
    int64_t held = order[i];
    order[i] = order[j];
    order[j] = held;
  }
}

int64_t shard_position(int64_t batch, int rank, int j, int batch_size, int world_size) {
  return batch * batch_size * world_size + (int64_t)rank * batch_size + j;
}
