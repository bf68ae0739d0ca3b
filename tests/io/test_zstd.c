/* zstd filter 32015 round trip.
 *   test_zstd write FILE   writes /masks (a known pattern) and /noise with the
 *                          filter, reads both back, checks the filter is recorded
 *                          and that the pattern compressed
 *   test_zstd read FILE    checks /masks of a file another writer produced
 * The pattern: value(n,y,x) = 255 where (n+y+x) % 11 == 0, else (31n+7y+3x) % 13. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "check.h"
#include "h5check.h"
#include "h5zstd.h"

enum { N = 4, H = 37, W = 23 };

static uint8_t pattern(int n, int y, int x) {
  return (n + y + x) % 11 == 0 ? 255 : (uint8_t)((31 * n + 7 * y + 3 * x) % 13);
}

static void write_dataset(hid_t file, const char *name, const hsize_t *dims, const uint8_t *data) {
  hsize_t chunk[3] = {1, dims[1], dims[2]};
  unsigned level = 5;
  hid_t space = H5_ID(H5Screate_simple(3, dims, NULL), "%s", name);
  hid_t dcpl = H5_ID(H5Pcreate(H5P_DATASET_CREATE), "%s", name);
  H5_OK(H5Pset_chunk(dcpl, 3, chunk), "%s", name);
  H5_OK(H5Pset_filter(dcpl, H5ZSTD_FILTER_ID, H5Z_FLAG_MANDATORY, 1, &level), "%s", name);
  hid_t dataset = H5_ID(H5Dcreate2(file, name, H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT),
                        "%s", name);
  H5_OK(H5Dwrite(dataset, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "%s", name);
  H5Dclose(dataset);
  H5Pclose(dcpl);
  H5Sclose(space);
}

/* Reads `name` fully; returns its storage size and checks the filter is in its pipeline. */
static hsize_t read_dataset(hid_t file, const char *name, size_t bytes, uint8_t *out) {
  hid_t dataset = H5_ID(H5Dopen2(file, name, H5P_DEFAULT), "%s", name);
  hid_t space = H5_ID(H5Dget_space(dataset), "%s", name);
  FP_CHECK((size_t)H5Sget_simple_extent_npoints(space) == bytes, "%s: wrong size", name);
  H5Sclose(space);
  H5_OK(H5Dread(dataset, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, out), "%s", name);
  hid_t dcpl = H5_ID(H5Dget_create_plist(dataset), "%s", name);
  unsigned flags, cd_values[4];
  size_t cd_count = 4;
  char filter_name[128];
  FP_CHECK(H5Pget_filter_by_id2(dcpl, H5ZSTD_FILTER_ID, &flags, &cd_count, cd_values,
                                sizeof filter_name, filter_name, NULL) >= 0,
           "%s: filter %d is not in the pipeline", name, H5ZSTD_FILTER_ID);
  H5Pclose(dcpl);
  hsize_t storage = H5Dget_storage_size(dataset);
  H5Dclose(dataset);
  return storage;
}

static void check_pattern(const uint8_t *data, const char *where) {
  for (int n = 0; n < N; n++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        FP_CHECK(data[(n * H + y) * W + x] == pattern(n, y, x), "%s: (%d,%d,%d) is %d, not %d",
                 where, n, y, x, data[(n * H + y) * W + x], pattern(n, y, x));
}

static void write_and_check(const char *path) {
  uint8_t masks[N * H * W], masks_back[N * H * W];
  for (int n = 0; n < N; n++)
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) masks[(n * H + y) * W + x] = pattern(n, y, x);
  enum { NOISE = 2 * 64 * 64 };
  uint8_t *noise = fp_malloc(NOISE), *noise_back = fp_malloc(NOISE);
  uint32_t state = 12345;
  for (int i = 0; i < NOISE; i++) {
    state = state * 1664525u + 1013904223u;
    noise[i] = (uint8_t)(state >> 24);
  }
  hid_t file = H5_ID(H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), "%s", path);
  hsize_t mask_dims[3] = {N, H, W}, noise_dims[3] = {2, 64, 64};
  write_dataset(file, "/masks", mask_dims, masks);
  write_dataset(file, "/noise", noise_dims, noise);
  H5_OK(H5Fclose(file), "%s", path);

  file = H5_ID(H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), "%s", path);
  hsize_t stored = read_dataset(file, "/masks", sizeof masks_back, masks_back);
  check_pattern(masks_back, path);
  FP_CHECK(stored < sizeof masks / 2, "%s: /masks stored in %llu bytes, raw %zu: not compressed",
           path, (unsigned long long)stored, sizeof masks);
  read_dataset(file, "/noise", NOISE, noise_back);
  FP_CHECK(!memcmp(noise, noise_back, NOISE), "%s: /noise differs after the round trip", path);
  H5_OK(H5Fclose(file), "%s", path);
  printf("zstd round trip ok: /masks %zu bytes stored in %llu\n", sizeof masks,
         (unsigned long long)stored);
  free(noise);
  free(noise_back);
}

int main(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[1], "write") && strcmp(argv[1], "read"))) {
    fprintf(stderr, "usage: test_zstd write|read FILE\n");
    return 2;
  }
  h5zstd_register();
  h5zstd_register(); /* idempotent */
  if (!strcmp(argv[1], "write")) {
    write_and_check(argv[2]);
    return 0;
  }
  uint8_t masks[N * H * W];
  hid_t file = H5_ID(H5Fopen(argv[2], H5F_ACC_RDONLY, H5P_DEFAULT), "%s", argv[2]);
  read_dataset(file, "/masks", sizeof masks, masks);
  check_pattern(masks, argv[2]);
  H5Fclose(file);
  printf("%s: /masks from another writer decoded correctly\n", argv[2]);
  return 0;
}
