/* The previous run's results, for nightly mode: which ids it parsed (or
 * failed) with which content hash and product type, and their result rows,
 * read as raw chunks from its shard files (through its master's /shard_table),
 * so copying a result costs no decompression. */
#ifndef FP_CATALOG_PREVIOUS_H
#define FP_CATALOG_PREVIOUS_H

#include <stdint.h>

#include "catalog_shard.h"
#include "catalog_source.h"

typedef struct catalog_previous catalog_previous;

typedef enum previous_kind { PREVIOUS_ABSENT, PREVIOUS_ROW, PREVIOUS_FAILURE } previous_kind;

typedef struct previous_entry {
  previous_kind kind;
  int64_t index; /* master row or /failed record */
  uint64_t content_hash;
  const char *product_type; /* "" for failures */
} previous_entry;

/* Opens run_directory/master.h5. FP_FATAL naming it if absent or unreadable. */
catalog_previous *catalog_previous_open(const char *run_directory);
void catalog_previous_close(catalog_previous *p);
uint64_t catalog_previous_result_fingerprint(const catalog_previous *p);
const catalog_layout *catalog_previous_layout(const catalog_previous *p);
/* What the previous run has for id. Thread-safe. */
previous_entry catalog_previous_find(const catalog_previous *p, const char *id);
/* Master row `row` of the previous run into row `out_row` of out (raw masks). */
void catalog_previous_read_row(catalog_previous *p, int64_t row, catalog_rows *out,
                               int64_t out_row);
/* How many ids of the previous run (parsed or failed) the catalog no longer has. */
int64_t catalog_previous_removed(const catalog_previous *p, const catalog *current);

#endif
