/* Compares two parse_catalog results of the same catalog (say the CPU's and a GPU's): the
 * masks pixel by pixel over the photo pixels (255 = letterbox padding must match exactly) and
 * /pixel_fraction. Exit 0 when the share of equal photo pixels is at least MIN (default 1),
 * 3 when below, 1 (FP_FATAL) when the two are not results of the same images and size.
 * Usage: compare_masters A/master.h5 B/master.h5 [MIN] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog_source.h"
#include "check.h"
#include "h5check.h"
#include "h5zstd.h"

typedef struct master {
  const char *path;
  hid_t file;
  hsize_t images, height, width, classes;
} master;

static hsize_t dims_of(hid_t file, const char *path, const char *name, int rank, hsize_t *dims) {
  hid_t dataset = H5_ID(H5Dopen2(file, name, H5P_DEFAULT), "%s: %s", path, name);
  hid_t space = H5_ID(H5Dget_space(dataset), "%s: %s", path, name);
  FP_CHECK(H5Sget_simple_extent_ndims(space) == rank, "%s: %s is not of rank %d", path, name, rank);
  H5_OK(H5Sget_simple_extent_dims(space, dims, NULL), "%s: %s", path, name);
  H5_OK(H5Sclose(space), "%s", path);
  H5_OK(H5Dclose(dataset), "%s", path);
  return dims[0];
}

static master master_open(const char *path) {
  master m = {.path = path};
  m.file = H5_ID(H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), "%s", path);
  hsize_t dims[3];
  m.images = dims_of(m.file, path, "/masks", 3, dims);
  m.height = dims[1];
  m.width = dims[2];
  FP_CHECK(dims_of(m.file, path, "/pixel_fraction", 2, dims) == m.images,
           "%s: /pixel_fraction and /masks differ in rows", path);
  m.classes = dims[1];
  return m;
}

/* Rows [first, first + count) of an [N, row_elements] dataset, as `type`. */
static void read_rows(const master *m, const char *name, hid_t type, hsize_t first, hsize_t count,
                      hsize_t row_elements, void *out) {
  hid_t dataset = H5_ID(H5Dopen2(m->file, name, H5P_DEFAULT), "%s: %s", m->path, name);
  hid_t space = H5_ID(H5Dget_space(dataset), "%s: %s", m->path, name);
  hsize_t start[3] = {first, 0, 0}, size[3];
  H5_OK(H5Sget_simple_extent_dims(space, size, NULL), "%s: %s", m->path, name);
  size[0] = count;
  H5_OK(H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, size, NULL), "%s: %s rows %llu+",
        m->path, name, (unsigned long long)first);
  hsize_t elements = count * row_elements;
  hid_t memory = H5_ID(H5Screate_simple(1, &elements, NULL), "%s", m->path);
  H5_OK(H5Dread(dataset, type, memory, space, H5P_DEFAULT, out), "%s: %s rows %llu..%llu", m->path,
        name, (unsigned long long)first, (unsigned long long)(first + count));
  H5_OK(H5Sclose(memory), "%s", m->path);
  H5_OK(H5Sclose(space), "%s", m->path);
  H5_OK(H5Dclose(dataset), "%s", m->path);
}

static void check_same_images(const master *a, const master *b) {
  FP_CHECK(a->images == b->images && a->height == b->height && a->width == b->width &&
               a->classes == b->classes,
           "%s has %llu x %llu x %llu masks of %llu classes, %s %llu x %llu x %llu of %llu",
           a->path, (unsigned long long)a->images, (unsigned long long)a->height,
           (unsigned long long)a->width, (unsigned long long)a->classes, b->path,
           (unsigned long long)b->images, (unsigned long long)b->height,
           (unsigned long long)b->width, (unsigned long long)b->classes);
  hid_t id_type = h5_fixed_string_type(CATALOG_ID_LENGTH);
  char *ids_a = fp_malloc(a->images * CATALOG_ID_LENGTH + 1);
  char *ids_b = fp_malloc(b->images * CATALOG_ID_LENGTH + 1);
  read_rows(a, "/ids", id_type, 0, a->images, 1, ids_a);
  read_rows(b, "/ids", id_type, 0, b->images, 1, ids_b);
  for (hsize_t i = 0; i < a->images; i++)
    FP_CHECK(
        !strncmp(ids_a + i * CATALOG_ID_LENGTH, ids_b + i * CATALOG_ID_LENGTH, CATALOG_ID_LENGTH),
        "row %llu: image '%.64s' in %s, '%.64s' in %s", (unsigned long long)i,
        ids_a + i * CATALOG_ID_LENGTH, a->path, ids_b + i * CATALOG_ID_LENGTH, b->path);
  H5_OK(H5Tclose(id_type), "string type");
  free(ids_a);
  free(ids_b);
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: compare_masters A/master.h5 B/master.h5 [MIN_EQUAL_SHARE]\n");
    return 2;
  }
  double min_share = argc == 4 ? atof(argv[3]) : 1.0;
  h5zstd_register();
  master a = master_open(argv[1]), b = master_open(argv[2]);
  check_same_images(&a, &b);
  hsize_t plane = a.height * a.width;
  uint8_t *mask_a = fp_malloc(plane), *mask_b = fp_malloc(plane);
  float *fraction_a = fp_malloc(a.classes * sizeof(float));
  float *fraction_b = fp_malloc(a.classes * sizeof(float));
  unsigned long long photo_pixels = 0, differing_pixels = 0, images_differing = 0;
  double worst_fraction = 0;
  for (hsize_t i = 0; i < a.images; i++) {
    read_rows(&a, "/masks", H5T_NATIVE_UINT8, i, 1, plane, mask_a);
    read_rows(&b, "/masks", H5T_NATIVE_UINT8, i, 1, plane, mask_b);
    unsigned long long differing = 0;
    for (hsize_t p = 0; p < plane; p++) {
      FP_CHECK((mask_a[p] == 255) == (mask_b[p] == 255),
               "row %llu pixel %llu: letterbox padding in one result only", (unsigned long long)i,
               (unsigned long long)p);
      if (mask_a[p] == 255) continue;
      photo_pixels++;
      differing += mask_a[p] != mask_b[p];
    }
    differing_pixels += differing;
    images_differing += differing > 0;
    read_rows(&a, "/pixel_fraction", H5T_NATIVE_FLOAT, i, 1, a.classes, fraction_a);
    read_rows(&b, "/pixel_fraction", H5T_NATIVE_FLOAT, i, 1, a.classes, fraction_b);
    for (hsize_t k = 0; k < a.classes; k++)
      worst_fraction = fmax(worst_fraction, fabs((double)fraction_a[k] - fraction_b[k]));
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
  free(mask_a);
  free(mask_b);
  free(fraction_a);
  free(fraction_b);
  H5_OK(H5Fclose(a.file), "%s", a.path);
  H5_OK(H5Fclose(b.file), "%s", b.path);
  return share >= min_share ? 0 : 3;
}
