/* FNV-1a 64, the engine's one hash: the content hash of catalog images (JPEG bytes or stored
 * pixels), the id hash of the id maps, the fingerprints of jobs and checkpoints, the check that
 * every rank runs the same job, the backend's primitive cache and JSON member names. Not
 * cryptographic; chosen because every language computes it in a few lines
 * (docs/parse_catalog.md has the Python). */
#ifndef FP_HASH_H
#define FP_HASH_H

#include <stddef.h>
#include <stdint.h>

#define FNV1A64_START 0xcbf29ce484222325ull

/* Continues a hash over `bytes` more bytes; start from FNV1A64_START. */
uint64_t fnv1a64_update(uint64_t hash, const void *data, size_t bytes);

static inline uint64_t fnv1a64(const void *data, size_t bytes) {
  return fnv1a64_update(FNV1A64_START, data, bytes);
}

#endif
