/* The images of a catalog to parse, in a fixed order, from one of:
 *  - an HDF5 dataset made by `ingest` (docs/dataset.md): its /images, already
 *    letterboxed to the model size, with /ids, /source_size and /letterbox;
 *    /masks, if present, are not used;
 *  - a directory: every *.jpg / *.jpeg in it (not in subdirectories), in byte
 *    order of the file names;
 *  - a list file: one JPEG path per line, in the file's order (relative paths
 *    are relative to the list file's directory; blank lines and lines starting
 *    with '#' are skipped).
 * An image's id is its /ids entry, or its file name without the extension.
 * Ids must be unique and shorter than CATALOG_ID_LENGTH.
 *
 * The content hash is FNV-1a 64 (src/base/hash.h) of the JPEG file's bytes, or
 * of the stored [H,W,3] image. JPEGs are letterboxed with io/resize into the
 * same box as `ingest` computes (from the photo's own size), but decoded at the
 * smallest DCT scale (1/8, 2/8, 4/8 or 8/8, io/jpeg_io) that still has the
 * box's pixels, where `ingest` decodes at full size: the letterboxed pixels
 * are close to, not equal to, those of the ingested copy. */
#ifndef FP_CATALOG_SOURCE_H
#define FP_CATALOG_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "resize.h"

#define CATALOG_ID_LENGTH 64      /* as /ids of the dataset files: NUL-terminated */
#define CATALOG_REASON_LENGTH 512 /* failure reasons */

typedef enum catalog_kind { CATALOG_HDF5, CATALOG_DIRECTORY, CATALOG_LIST } catalog_kind;

typedef struct catalog catalog;

/* Lists the catalog (the first `limit` images, 0 = all). FP_FATAL naming the
 * path on an unreadable source, a duplicate or too long id. */
catalog *catalog_open(const char *path, int64_t limit);
/* The listing sent to other ranks without a copy: a transfer is up to five byte ranges, sent
 * and received in order (parse_catalog broadcasts them). The sender's ranges point into its
 * catalog; a receiver gets the header range first, then catalog_transfer_allocate makes the
 * arrays the other ranges are received into, in place. An HDF5 catalog's file is reopened by
 * catalog_transfer_finish. */
typedef struct catalog_transfer {
  int count;
  void *data[5];
  size_t bytes[5];
  void *header;
  catalog *receiving;
} catalog_transfer;
catalog_transfer catalog_transfer_send(const catalog *c);
catalog_transfer catalog_transfer_receive(void);
void catalog_transfer_allocate(catalog_transfer *t);
/* Ends a transfer: NULL on the sending side, the received catalog on a receiving one. */
catalog *catalog_transfer_finish(catalog_transfer *t);
void catalog_close(catalog *c);

catalog_kind catalog_kind_of(const catalog *c);
int64_t catalog_count(const catalog *c);
const char *catalog_id(const catalog *c, int64_t i);
/* HDF5 catalogs: the stored image size; 0 for JPEG catalogs. */
int catalog_stored_height(const catalog *c);
int catalog_stored_width(const catalog *c);
/* FNV-1a 64 over the ids in order: identifies the listing. */
uint64_t catalog_listing_hash(const catalog *c);

/* Where an image came from and how it was placed in the model's frame. */
typedef struct catalog_geometry {
  int32_t source_height, source_width;
  letterbox box;
} catalog_geometry;

/* The content hash of image i. Returns 0, or -1 with the reason (naming the
 * file) when it cannot be read. Thread-safe. */
int catalog_hash_image(catalog *c, int64_t i, uint64_t *hash, char *reason, size_t reason_size);
/* Image i letterboxed into height x width RGB (hwc, height*width*3 bytes) and
 * its geometry. HDF5 catalogs require height x width to be the stored size.
 * Returns 0, or -1 with the reason (a JPEG that does not decode, or is
 * truncated). Thread-safe. */
int catalog_load_image(catalog *c, int64_t i, int height, int width, uint8_t *hwc,
                       catalog_geometry *geometry, char *reason, size_t reason_size);

#endif
