/* Image id -> int64 value: the catalog's row of an id, the prior rule of an id,
 * the previous run's row of an id. Open addressing over FNV-1a hashes of the
 * ids, which are copied in. */
#ifndef FP_CATALOG_IDMAP_H
#define FP_CATALOG_IDMAP_H

#include <stdint.h>

typedef struct id_map id_map;

id_map *id_map_create(int64_t expected_count);
/* Inserts id -> value and returns -1, or, if id is there already, leaves the map
 * unchanged and returns the value it has. value must be >= 0. */
int64_t id_map_put(id_map *m, const char *id, int64_t value);
/* The value of id, or -1. */
int64_t id_map_get(const id_map *m, const char *id);
void id_map_free(id_map *m);

#endif
