/* Compares two parse_catalog results of the same catalog (say the CPU's and a GPU's): the
 * masks pixel by pixel over the photo pixels (255 = letterbox padding must match exactly) and
 * /pixel_fraction. Exit 0 when the share of equal photo pixels is at least MIN (default 1),
 * 3 when below, 1 (FP_FATAL) when the two are not results of the same images and size.
 * Usage: compare_masters A/master.h5 B/master.h5 [MIN] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog_master.h"
#include "check.h"
#include "h5check.h"

enum { BLOCK_ROWS = 64 };

typedef struct master {
  const char *path;
  hsize_t images, height, width, classes;
} master;

/* A block of rows as catalog_master_read gives them. */
typedef struct rows {
  char (*ids)[CATALOG_ID_LENGTH];
  int64_t *catalog_index;
  float *pixel_fraction;
  uint8_t *masks;
} rows;

static hsize_t dims_of(hid_t file, const char *path, const char *name, int rank, hsize_t *dims) {
  hid_t dataset = H5_ID(H5Dopen2(file, name, H5P_DEFAULT), "%s: %s", path, name);
  hid_t space = H5_ID(H5Dget_space(dataset), "%s: %s", path, name);
  FP_CHECK(H5Sget_simple_extent_ndims(space) == rank, "%s: %s is not of rank %d", path, name, rank);
  H5_OK(H5Sget_simple_extent_dims(space, dims, NULL), "%s: %s", path, name);
  H5_OK(H5Sclose(space), "%s", path);
  H5_OK(H5Dclose(dataset), "%s", path);
  return dims[0];
}

/* The result's shape: images, mask size and classes. */
static master master_shape(const char *path) {
  master m = {.path = path};
  hid_t file = H5_ID(H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), "%s", path);
  hsize_t dims[3];
  m.images = dims_of(file, path, "/masks", 3, dims);
  m.height = dims[1];
  m.width = dims[2];
  FP_CHECK(dims_of(file, path, "/pixel_fraction", 2, dims) == m.images,
           "%s: /pixel_fraction and /masks differ in rows", path);
  m.classes = dims[1];
  H5_OK(H5Fclose(file), "%s", path);
  return m;
}

static rows rows_alloc(const master *m) {
  return (rows){fp_malloc(BLOCK_ROWS * sizeof(char[CATALOG_ID_LENGTH])),
                fp_malloc(BLOCK_ROWS * sizeof(int64_t)),
                fp_malloc(BLOCK_ROWS * m->classes * sizeof(float)),
                fp_malloc(BLOCK_ROWS * m->height * m->width)};
}

static void rows_free(rows *r) {
  free(r->ids);
  free(r->catalog_index);
  free(r->pixel_fraction);
  free(r->masks);
}

static void check_same_shape(const master *a, const master *b) {
  FP_CHECK(a->images == b->images && a->height == b->height && a->width == b->width &&
               a->classes == b->classes,
           "%s has %llu x %llu x %llu masks of %llu classes, %s %llu x %llu x %llu of %llu",
           a->path, (unsigned long long)a->images, (unsigned long long)a->height,
           (unsigned long long)a->width, (unsigned long long)a->classes, b->path,
           (unsigned long long)b->images, (unsigned long long)b->height,
           (unsigned long long)b->width, (unsigned long long)b->classes);
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: compare_masters A/master.h5 B/master.h5 [MIN_EQUAL_SHARE]\n");
    return 2;
  }
  double min_share = argc == 4 ? atof(argv[3]) : 1.0;
  master a = master_shape(argv[1]), b = master_shape(argv[2]);
  check_same_shape(&a, &b);
  hsize_t plane = a.height * a.width;
  rows ra = rows_alloc(&a), rb = rows_alloc(&b);
  unsigned long long photo_pixels = 0, differing_pixels = 0, images_differing = 0;
  double worst_fraction = 0;
  for (hsize_t first = 0; first < a.images; first += BLOCK_ROWS) {
    int64_t count = (int64_t)(a.images - first < BLOCK_ROWS ? a.images - first : BLOCK_ROWS);
    catalog_master_read(a.path, (int64_t)first, count, ra.ids, ra.catalog_index, ra.pixel_fraction,
                        ra.masks);
    catalog_master_read(b.path, (int64_t)first, count, rb.ids, rb.catalog_index, rb.pixel_fraction,
                        rb.masks);
    for (int64_t i = 0; i < count; i++) {
      FP_CHECK(!strncmp(ra.ids[i], rb.ids[i], CATALOG_ID_LENGTH),
               "row %llu: image '%.64s' in %s, '%.64s' in %s", (unsigned long long)(first + i),
               ra.ids[i], a.path, rb.ids[i], b.path);
      const uint8_t *mask_a = ra.masks + i * plane, *mask_b = rb.masks + i * plane;
      unsigned long long differing = 0;
      for (hsize_t p = 0; p < plane; p++) {
        FP_CHECK((mask_a[p] == 255) == (mask_b[p] == 255),
                 "row %llu pixel %llu: letterbox padding in one result only",
                 (unsigned long long)(first + i), (unsigned long long)p);
        if (mask_a[p] == 255) continue;
        photo_pixels++;
        differing += mask_a[p] != mask_b[p];
      }
      differing_pixels += differing;
      images_differing += differing > 0;
      for (hsize_t k = 0; k < a.classes; k++)
        worst_fraction = fmax(worst_fraction, fabs((double)ra.pixel_fraction[i * a.classes + k] -
                                                   rb.pixel_fraction[i * a.classes + k]));
    }
  }
  double share = photo_pixels ? 1.0 - (double)differing_pixels / (double)photo_pixels : 1.0;
  printf("images %llu (%llux%llu, %llu classes), photo pixels %llu\n", (unsigned long long)a.images,
         (unsigned long long)a.height, (unsigned long long)a.width, (unsigned long long)a.classes,
         photo_pixels);
  printf("masks: %llu pixels differ (equal share %.6f), in %llu images\n", differing_pixels, share,
         images_differing);
  printf("pixel_fraction: largest difference %.6f\n", worst_fraction);
  printf("%s: equal share %.6f %s %.6f\n", share >= min_share ? "agree" : "DISAGREE", share,
         share >= min_share ? ">=" : "<", min_share);
  rows_free(&ra);
  rows_free(&rb);
  return share >= min_share ? 0 : 3;
}
