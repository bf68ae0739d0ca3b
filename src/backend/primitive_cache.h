/* Maps a key (any byte string: op kind and shape) to a backend's per-shape
 * state, so that primitives are created once per shape and reused. */
#ifndef FP_PRIMITIVE_CACHE_H
#define FP_PRIMITIVE_CACHE_H

#include <stddef.h>

typedef struct primitive_cache {
  struct primitive_cache_slot *slots;
  size_t capacity, used;
} primitive_cache;

void primitive_cache_init(primitive_cache *cache);
void *primitive_cache_find(const primitive_cache *cache, const void *key, size_t key_bytes);
void primitive_cache_insert(primitive_cache *cache, const void *key, size_t key_bytes, void *value);

#endif
