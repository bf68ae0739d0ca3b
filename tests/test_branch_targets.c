/* The branches' targets from masks (boxes, presence, relative coordinates) and the dropout
 * draw (deterministic, independent of how the global batch is split over ranks, about p
 * dropped). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "branch_targets.h"
#include "check.h"

static void test_boxes(void) {
  uint8_t mask[6 * 5];
  memset(mask, 0, sizeof mask);
  mask[1 * 5 + 2] = mask[3 * 5 + 4] = 1; /* class 1 spans rows 1-3, columns 2-4 */
  mask[5 * 5 + 0] = 255;
  int32_t boxes[4 * 4];
  mask_class_boxes(mask, 6, 5, 4, boxes);
  const int32_t expected[16] = {0, 0, 6, 5, 1, 2, 4, 5, -1, -1, -1, -1, -1, -1, -1, -1};
  FP_CHECK(!memcmp(boxes, expected, sizeof expected), "boxes: %d %d %d %d / %d %d %d %d", boxes[0],
           boxes[1], boxes[2], boxes[3], boxes[4], boxes[5], boxes[6], boxes[7]);

  uint8_t masks[2 * 6 * 5];
  memcpy(masks, mask, sizeof mask);
  memset(masks + 30, 2, 30); /* the second image: class 2 everywhere */
  float presence[2 * 4], relative[2 * 4 * 4];
  size_t present = branch_targets_from_masks(masks, 2, 6, 5, 4, presence, relative);
  const float want_presence[8] = {1, 1, 0, 0, 0, 0, 1, 0};
  FP_CHECK(present == 3 && !memcmp(presence, want_presence, sizeof want_presence),
           "presence: %zu present", present);
  const float want_class1[4] = {1.0f / 6, 2.0f / 5, 4.0f / 6, 1.0f};
  const float want_image2_class2[4] = {0, 0, 1, 1};
  FP_CHECK(!memcmp(relative + 4, want_class1, sizeof want_class1), "relative box of class 1");
  FP_CHECK(!memcmp(relative + 6 * 4, want_image2_class2, sizeof want_image2_class2),
           "relative box of image 2 class 2");
  for (int j = 0; j < 4; j++) FP_CHECK(relative[2 * 4 + j] == 0.0f, "absent class's box not 0");
}

/* A batch with a tag-only image: its class targets are its tags, its boxes 0 and not counted;
 * the annotated image's targets are those of branch_targets_from_masks. */
static void test_tag_only(void) {
  enum { N = 2, HW = 3 * 2, K = 3 };
  uint8_t masks[N * HW];
  memset(masks, 0, HW);
  masks[4] = masks[5] = 2;     /* image 0: classes 0 and 2 */
  memset(masks + HW, 255, HW); /* image 1: tag-only, all ignore label */
  const uint8_t tags[N * K] = {0, 0, 0, 0, 1, 1}, tag_only[N] = {0, 1};
  float presence[N * K], boxes[N * K * 4], box_mask[N * K];
  float mask_presence[N * K], mask_boxes[N * K * 4];
  size_t counted =
      branch_targets_from_batch(masks, tags, tag_only, N, 3, 2, K, presence, boxes, box_mask);
  size_t present = branch_targets_from_masks(masks, N, 3, 2, K, mask_presence, mask_boxes);
  const float want_presence[N * K] = {1, 0, 1, 0, 1, 1}, want_box_mask[N * K] = {1, 0, 1, 0, 0, 0};
  FP_CHECK(counted == 2 && present == 2, "boxes counted %zu, present %zu", counted, present);
  FP_CHECK(!memcmp(presence, want_presence, sizeof presence), "tag-only presence is not its tags");
  FP_CHECK(!memcmp(box_mask, want_box_mask, sizeof box_mask), "box mask counts a tag-only image");
  FP_CHECK(!memcmp(boxes, mask_boxes, sizeof boxes), "boxes differ from the masks'");
  for (int j = K * 4; j < N * K * 4; j++) FP_CHECK(boxes[j] == 0.0f, "tag-only box not 0");
  size_t again =
      branch_targets_from_batch(masks, NULL, NULL, N, 3, 2, K, presence, boxes, box_mask);
  FP_CHECK(again == present && !memcmp(presence, mask_presence, sizeof presence) &&
               !memcmp(box_mask, mask_presence, sizeof box_mask),
           "without tags the targets are the masks'");
}

static void test_dropout(void) {
  enum { SAMPLES = 8, UNITS = 512 };
  static float whole[SAMPLES * UNITS], part[SAMPLES * UNITS], other_step[SAMPLES * UNITS];
  dropout_keep_mask(7, 3, 0, SAMPLES, UNITS, 0.25f, whole);
  /* rank 1 of 2 with 4 images each draws the global batch's rows 4..7 */
  dropout_keep_mask(7, 3, 4, SAMPLES / 2, UNITS, 0.25f, part);
  FP_CHECK(!memcmp(whole + SAMPLES / 2 * UNITS, part, sizeof whole / 2),
           "dropout: a rank's rows differ from the global batch's");
  dropout_keep_mask(7, 4, 0, SAMPLES, UNITS, 0.25f, other_step);
  FP_CHECK(memcmp(whole, other_step, sizeof whole), "dropout: two steps draw the same mask");
  int dropped = 0;
  for (int i = 0; i < SAMPLES * UNITS; i++) {
    FP_CHECK(whole[i] == 0.0f || whole[i] == 1.0f / 0.75f, "dropout mask value %g", whole[i]);
    dropped += whole[i] == 0.0f;
  }
  /* 4096 Bernoulli(0.25) draws: mean 1024, sd 27.7; 5 sd either way */
  FP_CHECK(fabs(dropped - 1024.0) < 5 * 27.7, "dropout dropped %d of 4096 at p 0.25", dropped);
  printf("branch targets ok; dropout dropped %d of 4096 at p 0.25\n", dropped);
}

int main(void) {
  test_boxes();
  test_tag_only();
  test_dropout();
  return 0;
}
