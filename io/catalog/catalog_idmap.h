/* Image id -> int64 value: the catalog's row of an id, the prior rule of an id,
 * the previous run's row of an id. Open addressing (linear probing) over FNV-1a
 * hashes of the ids, at most 3/4 full: 16 bytes per slot, 1.33-2.67 slots per id.
 * A map either copies the ids it is given or borrows them: then they must stay
 * valid and unchanged until the map is freed (the catalog's own ids, at 10 M
 * images, are not worth a second copy: results/catalog_scale.md). */
#ifndef FP_CATALOG_IDMAP_H
#define FP_CATALOG_IDMAP_H

#include <stdint.h>

typedef struct id_map id_map;

typedef enum id_map_ownership { ID_MAP_COPIES, ID_MAP_BORROWS } id_map_ownership;

id_map *id_map_create(int64_t expected_count, id_map_ownership ownership);
/* Inserts id -> value and returns -1, or, if id is there already, leaves the map
 * unchanged and returns the value it has. value must be >= 0. */
int64_t id_map_put(id_map *m, const char *id, int64_t value);
/* The value of id, or -1. */
int64_t id_map_get(const id_map *m, const char *id);
void id_map_free(id_map *m);

#endif
