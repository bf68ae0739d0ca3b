/* Small deterministic RNG (splitmix64 seeding a xoshiro256** stream). */
#ifndef FP_RNG_H
#define FP_RNG_H

#include <stdint.h>

typedef struct rng {
  uint64_t state[4];
  double spare_normal; /* rng_normal draws normals in pairs; the second waits here */
  int has_spare_normal;
} rng;

void rng_seed(rng *r, uint64_t seed);
uint64_t rng_next(rng *r);
double rng_uniform(rng *r); /* [0, 1) */
double rng_normal(rng *r);  /* standard normal */

#endif
