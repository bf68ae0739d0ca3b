#include "catalog_idmap.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "check.h"

typedef struct slot {
  char *id; /* NULL: empty */
  uint64_t hash;
  int64_t value;
} slot;

struct id_map {
  slot *slots;
  int64_t capacity, count; /* capacity: a power of two, at least twice count */
};

id_map *id_map_create(int64_t expected_count) {
  id_map *m = fp_calloc(1, sizeof *m);
  m->capacity = 64;
  while (m->capacity < 2 * expected_count) m->capacity *= 2;
  m->slots = fp_calloc((size_t)m->capacity, sizeof *m->slots);
  return m;
}

static slot *probe(slot *slots, int64_t capacity, const char *id, uint64_t hash) {
  for (int64_t i = (int64_t)(hash & (uint64_t)(capacity - 1));; i = (i + 1) & (capacity - 1))
    if (!slots[i].id || (slots[i].hash == hash && !strcmp(slots[i].id, id))) return &slots[i];
}

static void grow(id_map *m) {
  int64_t capacity = 2 * m->capacity;
  slot *slots = fp_calloc((size_t)capacity, sizeof *slots);
  for (int64_t i = 0; i < m->capacity; i++)
    if (m->slots[i].id) *probe(slots, capacity, m->slots[i].id, m->slots[i].hash) = m->slots[i];
  free(m->slots);
  m->slots = slots;
  m->capacity = capacity;
}

int64_t id_map_put(id_map *m, const char *id, int64_t value) {
  FP_CHECK(value >= 0, "id_map_put: value %lld < 0", (long long)value);
  if (2 * (m->count + 1) > m->capacity) grow(m);
  uint64_t hash = fnv1a64(id, strlen(id));
  slot *s = probe(m->slots, m->capacity, id, hash);
  if (s->id) return s->value;
  s->id = strdup(id);
  FP_CHECK(s->id, "out of memory");
  s->hash = hash;
  s->value = value;
  m->count++;
  return -1;
}

int64_t id_map_get(const id_map *m, const char *id) {
  const slot *s = probe(m->slots, m->capacity, id, fnv1a64(id, strlen(id)));
  return s->id ? s->value : -1;
}

void id_map_free(id_map *m) {
  if (!m) return;
  for (int64_t i = 0; i < m->capacity; i++) free(m->slots[i].id);
  free(m->slots);
  free(m);
}
