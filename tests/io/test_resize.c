/* Letterbox resize: parameters, padding values, bilinear pixel-centre
 * convention, nearest-neighbour masks, identity at the same size. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "resize.h"

static void test_fit(void) {
  letterbox box = letterbox_fit(832, 550, 288, 192);
  FP_CHECK(box.resized_h == 288 && box.resized_w == 190 && box.offset_y == 0 && box.offset_x == 1,
           "832x550 -> 288x192: resized %dx%d at (%d,%d)", box.resized_h, box.resized_w,
           box.offset_y, box.offset_x);
  FP_CHECK(box.scale > 0.3461f && box.scale < 0.3462f, "scale %f", box.scale);
  box = letterbox_fit(100, 400, 64, 64);
  FP_CHECK(box.resized_h == 16 && box.resized_w == 64 && box.offset_y == 24 && box.offset_x == 0,
           "100x400 -> 64x64: resized %dx%d at (%d,%d)", box.resized_h, box.resized_w, box.offset_y,
           box.offset_x);
}

static void test_padding_and_constant(void) {
  enum { SH = 100, SW = 400, H = 64, W = 64 };
  static uint8_t photo[SH * SW * 3], mask[SH * SW], out_photo[H * W * 3], out_mask[H * W];
  memset(photo, 77, sizeof photo);
  memset(mask, 3, sizeof mask);
  letterbox box = letterbox_fit(SH, SW, H, W);
  resize_photo(photo, SH, SW, &box, out_photo, H, W);
  resize_mask(mask, SH, SW, &box, out_mask, H, W);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int inside = y >= box.offset_y && y < box.offset_y + box.resized_h;
      FP_CHECK(out_mask[y * W + x] == (inside ? 3 : RESIZE_MASK_FILL), "mask (%d,%d) = %d", y, x,
               out_mask[y * W + x]);
      for (int c = 0; c < 3; c++)
        FP_CHECK(out_photo[(y * W + x) * 3 + c] == (inside ? 77 : 0), "photo (%d,%d) = %d", y, x,
                 out_photo[(y * W + x) * 3 + c]);
    }
}

static void test_bilinear_centres(void) {
  /* 1x2 -> 1x4 (scale 2): source x = (x + 0.5)/2 - 0.5 = -0.25, 0.25, 0.75, 1.25 (clamped). */
  uint8_t src[2 * 3] = {0, 0, 0, 200, 100, 40}, dst[4 * 3];
  letterbox box = letterbox_fit(1, 2, 2, 4);
  FP_CHECK(box.resized_h == 2 && box.resized_w == 4, "1x2 -> 2x4");
  uint8_t dst2[2 * 4 * 3];
  resize_photo(src, 1, 2, &box, dst2, 2, 4);
  memcpy(dst, dst2, sizeof dst);
  const uint8_t expected[4] = {0, 50, 150, 200};
  for (int x = 0; x < 4; x++)
    FP_CHECK(dst[x * 3] == expected[x] && dst2[(4 + x) * 3] == expected[x] &&
                 dst[x * 3 + 2] == expected[x] / 5,
             "bilinear x=%d: %d, expected %d", x, dst[x * 3], expected[x]);
}

static void test_nearest_and_identity(void) {
  uint8_t quadrants[16], small[4], same[16];
  for (int y = 0; y < 4; y++)
    for (int x = 0; x < 4; x++)
      quadrants[y * 4 + x] = (uint8_t)((y >= 2) * 2 + (x >= 2) + y * 10 + x);
  letterbox box = letterbox_fit(4, 4, 2, 2);
  resize_mask(quadrants, 4, 4, &box, small, 2, 2);
  const uint8_t expected[4] = {quadrants[1 * 4 + 1], quadrants[1 * 4 + 3], quadrants[3 * 4 + 1],
                               quadrants[3 * 4 + 3]};
  FP_CHECK(!memcmp(small, expected, 4), "nearest 4x4 -> 2x2: %d %d %d %d", small[0], small[1],
           small[2], small[3]);
  box = letterbox_fit(4, 4, 4, 4);
  resize_mask(quadrants, 4, 4, &box, same, 4, 4);
  FP_CHECK(!memcmp(same, quadrants, 16), "mask at the same size is not copied unchanged");
  uint8_t photo[4 * 4 * 3], photo_same[4 * 4 * 3];
  for (int i = 0; i < 48; i++) photo[i] = (uint8_t)(i * 5);
  resize_photo(photo, 4, 4, &box, photo_same, 4, 4);
  FP_CHECK(!memcmp(photo, photo_same, sizeof photo), "photo at the same size changed");
}

int main(void) {
  test_fit();
  test_padding_and_constant();
  test_bilinear_centres();
  test_nearest_and_identity();
  printf("resize ok\n");
  return 0;
}
