#include "primitive_cache.h"

#include <stdint.h>
#include <string.h>

#include "check.h"
#include "hash.h"

struct primitive_cache_slot {
  void *key;
  size_t key_bytes;
  uint64_t hash;
  void *value;
};

void primitive_cache_init(primitive_cache *cache) {
  cache->capacity = 256;
  cache->used = 0;
  cache->slots = fp_calloc(cache->capacity, sizeof *cache->slots);
}

static struct primitive_cache_slot *probe(const primitive_cache *cache, const void *key,
                                          size_t key_bytes, uint64_t hash) {
  size_t i = hash & (cache->capacity - 1);
  for (;;) {
    struct primitive_cache_slot *slot = &cache->slots[i];
    if (!slot->key) return slot;
    if (slot->hash == hash && slot->key_bytes == key_bytes && !memcmp(slot->key, key, key_bytes))
      return slot;
    i = (i + 1) & (cache->capacity - 1);
  }
}

void *primitive_cache_find(const primitive_cache *cache, const void *key, size_t key_bytes) {
  return probe(cache, key, key_bytes, fnv1a64(key, key_bytes))->value;
}

void primitive_cache_insert(primitive_cache *cache, const void *key, size_t key_bytes,
                            void *value) {
  if (2 * (cache->used + 1) > cache->capacity) {
    primitive_cache bigger = {fp_calloc(2 * cache->capacity, sizeof *cache->slots),
                              2 * cache->capacity, cache->used};
    for (size_t i = 0; i < cache->capacity; i++)
      if (cache->slots[i].key)
        *probe(&bigger, cache->slots[i].key, cache->slots[i].key_bytes, cache->slots[i].hash) =
            cache->slots[i];
    free(cache->slots);
    *cache = bigger;
  }
  uint64_t hash = fnv1a64(key, key_bytes);
  struct primitive_cache_slot *slot = probe(cache, key, key_bytes, hash);
  FP_CHECK(!slot->key, "primitive cache: key inserted twice");
  slot->key = fp_malloc(key_bytes);
  memcpy(slot->key, key, key_bytes);
  slot->key_bytes = key_bytes;
  slot->hash = hash;
  slot->value = value;
  cache->used++;
}
