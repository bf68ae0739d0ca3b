#include "catalog_idmap.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hash.h"

typedef struct slot {
  const char *id; /* NULL: empty */
  int64_t value;
} slot;

struct id_map {
  slot *slots;
  int64_t capacity, count; /* capacity: a power of two, count at most 3/4 of it */
  id_map_ownership ownership;
};

static int64_t capacity_for(int64_t count) {
  int64_t capacity = 64;
  while (3 * capacity < 4 * count) capacity *= 2;
  return capacity;
}

id_map *id_map_create(int64_t expected_count, id_map_ownership ownership) {
  id_map *m = fp_calloc(1, sizeof *m);
  m->capacity = capacity_for(expected_count);
  m->ownership = ownership;
  m->slots = fp_calloc((size_t)m->capacity, sizeof *m->slots);
  return m;
}

static slot *probe(slot *slots, int64_t capacity, const char *id) {
  uint64_t hash = fnv1a64(id, strlen(id));
  for (int64_t i = (int64_t)(hash & (uint64_t)(capacity - 1));; i = (i + 1) & (capacity - 1))
    if (!slots[i].id || !strcmp(slots[i].id, id)) return &slots[i];
}

static void grow(id_map *m) {
  int64_t capacity = 2 * m->capacity;
  slot *slots = fp_calloc((size_t)capacity, sizeof *slots);
  for (int64_t i = 0; i < m->capacity; i++)
    if (m->slots[i].id) *probe(slots, capacity, m->slots[i].id) = m->slots[i];
  free(m->slots);
  m->slots = slots;
  m->capacity = capacity;
}

int64_t id_map_put(id_map *m, const char *id, int64_t value) {
  FP_CHECK(value >= 0, "id_map_put: value %lld < 0", (long long)value);
  if (4 * (m->count + 1) > 3 * m->capacity) grow(m);
  slot *s = probe(m->slots, m->capacity, id);
  if (s->id) return s->value;
  if (m->ownership == ID_MAP_COPIES) {
    s->id = strdup(id);
    FP_CHECK(s->id, "out of memory");
  } else {
    s->id = id;
  }
  s->value = value;
  m->count++;
  return -1;
}

int64_t id_map_get(const id_map *m, const char *id) {
  const slot *s = probe(m->slots, m->capacity, id);
  return s->id ? s->value : -1;
}

void id_map_free(id_map *m) {
  if (!m) return;
  if (m->ownership == ID_MAP_COPIES)
    for (int64_t i = 0; i < m->capacity; i++) free((char *)m->slots[i].id);
  free(m->slots);
  free(m);
}
