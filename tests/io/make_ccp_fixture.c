/* Writes a small synthetic dataset in the CCP layout:
 *   make_ccp_fixture DIR good   annotated 0001-0006, tag-only 1005-1007
 *   make_ccp_fixture DIR bad    annotated 0001-0003 good, then 0004 truncated
 *                               JPEG, 0005 .mat without groundtruth, 0006 mask
 *                               size != photo size, 0007 class id 9 (unknown)
 * Classes (label_list): null shirt pants hair skin bag. Photo k has the size
 * fixture_sizes[k]; its label at (y, x) is (3y/h)*2 + (2x/w) and its colour
 * that label's entry in fixture_colours. tests/io/fp_testlib.py holds the same
 * tables. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "fixtures.h"

static const int fixture_sizes[7][2] = {{60, 40}, {45, 70}, {64, 64}, {80, 30},
                                        {50, 50}, {33, 47}, {90, 60}};
static const uint8_t fixture_colours[6][3] = {{200, 40, 40},  {40, 200, 40},  {40, 40, 200},
                                              {200, 200, 40}, {40, 200, 200}, {200, 40, 200}};
static const char *class_names[6] = {"null", "shirt", "pants", "hair", "skin", "bag"};

static void make_dir(const char *path) {
  FP_CHECK(mkdir(path, 0755) == 0 || errno == EEXIST, "%s: %s", path, strerror(errno));
}

static uint8_t label_at(int y, int x, int h, int w) {
  return (uint8_t)((3 * y / h) * 2 + (2 * x / w));
}

/* Photo `k` (sizes and colours above) as NAME.jpg, its labels in *labels. */
static void write_photo(const char *dir, const char *id, int k, uint8_t **labels) {
  int h = fixture_sizes[k][0], w = fixture_sizes[k][1];
  uint8_t *rgb = fp_malloc((size_t)h * w * 3);
  *labels = fp_malloc((size_t)h * w);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      uint8_t label = label_at(y, x, h, w);
      (*labels)[y * w + x] = label;
      memcpy(rgb + ((size_t)y * w + x) * 3, fixture_colours[label], 3);
    }
  char path[2048];
  snprintf(path, sizeof path, "%s/photos/%s.jpg", dir, id);
  fixture_write_jpeg(path, rgb, h, w, 3, 95);
  free(rgb);
}

static void write_annotated(const char *dir, int k, const char *variable, int mask_rows_delta,
                            int bad_class) {
  char id[16], path[2048];
  snprintf(id, sizeof id, "%04d", k + 1);
  uint8_t *labels;
  write_photo(dir, id, k, &labels);
  int h = fixture_sizes[k][0], w = fixture_sizes[k][1];
  if (bad_class) labels[(h / 2) * w + w / 2] = 9;
  /* extra rows of background for the size-mismatch case */
  uint8_t *mask = fp_calloc((size_t)(h + mask_rows_delta) * w, 1);
  memcpy(mask, labels, (size_t)h * w);
  snprintf(path, sizeof path, "%s/annotations/pixel-level/%s.mat", dir, id);
  fixture_write_mat_matrix(path, variable, mask, h + mask_rows_delta, w, 1);
  free(mask);
  free(labels);
}

static void write_tag_only(const char *dir, int k) {
  char id[16], path[2048];
  snprintf(id, sizeof id, "%04d", 1005 + k);
  uint8_t *labels;
  write_photo(dir, id, k, &labels);
  free(labels);
  /* tags list the present classes, as CCP's do: here 0 and two others. */
  uint8_t tags[3] = {0, (uint8_t)(1 + k), (uint8_t)(3 + k % 3)};
  snprintf(path, sizeof path, "%s/annotations/image-level/%s.mat", dir, id);
  fixture_write_mat_matrix(path, "tags", tags, 1, 3, 1);
}

int main(int argc, char **argv) {
  FP_CHECK(argc == 3 && (!strcmp(argv[2], "good") || !strcmp(argv[2], "bad")),
           "usage: make_ccp_fixture DIR good|bad");
  const char *dir = argv[1];
  char path[2048];
  make_dir(dir);
  const char *subdirs[] = {"photos", "annotations", "annotations/pixel-level",
                           "annotations/image-level"};
  for (int s = 0; s < 4; s++) {
    snprintf(path, sizeof path, "%s/%s", dir, subdirs[s]);
    make_dir(path);
  }
  snprintf(path, sizeof path, "%s/label_list.mat", dir);
  fixture_write_mat_strings(path, "label_list", class_names, 6);
  if (!strcmp(argv[2], "good")) {
    for (int k = 0; k < 6; k++) write_annotated(dir, k, "groundtruth", 0, 0);
    for (int k = 0; k < 3; k++) write_tag_only(dir, k);
    return 0;
  }
  for (int k = 0; k < 3; k++) write_annotated(dir, k, "groundtruth", 0, 0);
  write_annotated(dir, 3, "groundtruth", 0, 0);
  char truncated[2048];
  snprintf(path, sizeof path, "%s/photos/0004.jpg", dir);
  snprintf(truncated, sizeof truncated, "%s/photos/0004.part", dir);
  fixture_truncate_copy(path, truncated, 500);
  FP_CHECK(rename(truncated, path) == 0, "%s: %s", path, strerror(errno));
  write_annotated(dir, 4, "labels", 0, 0);
  write_annotated(dir, 5, "groundtruth", 2, 0);
  write_annotated(dir, 6, "groundtruth", 0, 1);
  return 0;
}
