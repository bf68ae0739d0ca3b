#include "resize.h"

#include <math.h>
#include <string.h>

#include "check.h"

letterbox letterbox_fit(int src_h, int src_w, int dst_h, int dst_w) {
  FP_CHECK(src_h > 0 && src_w > 0 && dst_h > 0 && dst_w > 0, "letterbox of %dx%d into %dx%d", src_h,
           src_w, dst_h, dst_w);
  double scale = fmin((double)dst_h / src_h, (double)dst_w / src_w);
  letterbox box;
  box.scale = (float)scale;
  box.resized_h = (int)fmin(fmax(lround(src_h * scale), 1), dst_h);
  box.resized_w = (int)fmin(fmax(lround(src_w * scale), 1), dst_w);
  box.offset_y = (dst_h - box.resized_h) / 2;
  box.offset_x = (dst_w - box.resized_w) / 2;
  return box;
}

/* Pixel-centre source coordinate of output index i, clamped to the image. */
static double source_coordinate(int i, int src_size, double extent, int resized_size) {
  double s = (i + 0.5) * extent / resized_size - 0.5;
  return fmin(fmax(s, 0.0), src_size - 1);
}

void resize_photo_extent(const uint8_t *src, int src_h, int src_w, double extent_h, double extent_w,
                         const letterbox *box, uint8_t *dst, int dst_h, int dst_w) {
  FP_CHECK(extent_h > 0 && extent_h <= src_h && extent_w > 0 && extent_w <= src_w,
           "resize of a %gx%g extent of a %dx%d image", extent_h, extent_w, src_h, src_w);
  memset(dst, 0, (size_t)dst_h * dst_w * 3);
  for (int y = 0; y < box->resized_h; y++) {
    double sy = source_coordinate(y, src_h, extent_h, box->resized_h);
    int y0 = (int)sy, y1 = y0 + 1 < src_h ? y0 + 1 : y0;
    double wy = sy - y0;
    const uint8_t *row0 = src + (size_t)y0 * src_w * 3, *row1 = src + (size_t)y1 * src_w * 3;
    uint8_t *out = dst + ((size_t)(y + box->offset_y) * dst_w + box->offset_x) * 3;
    for (int x = 0; x < box->resized_w; x++) {
      double sx = source_coordinate(x, src_w, extent_w, box->resized_w);
      int x0 = (int)sx, x1 = x0 + 1 < src_w ? x0 + 1 : x0;
      double wx = sx - x0;
      for (int c = 0; c < 3; c++) {
        double top = row0[x0 * 3 + c] + wx * (row0[x1 * 3 + c] - row0[x0 * 3 + c]);
        double bottom = row1[x0 * 3 + c] + wx * (row1[x1 * 3 + c] - row1[x0 * 3 + c]);
        out[x * 3 + c] = (uint8_t)lrint(top + wy * (bottom - top));
      }
    }
  }
}

void resize_photo(const uint8_t *src, int src_h, int src_w, const letterbox *box, uint8_t *dst,
                  int dst_h, int dst_w) {
  resize_photo_extent(src, src_h, src_w, src_h, src_w, box, dst, dst_h, dst_w);
}

static int nearest_source(int i, int src_size, int resized_size) {
  int s = (int)floor((i + 0.5) * src_size / resized_size);
  return s < src_size ? s : src_size - 1;
}

void resize_mask(const uint8_t *src, int src_h, int src_w, const letterbox *box, uint8_t *dst,
                 int dst_h, int dst_w) {
  memset(dst, RESIZE_MASK_FILL, (size_t)dst_h * dst_w);
  for (int y = 0; y < box->resized_h; y++) {
    const uint8_t *row = src + (size_t)nearest_source(y, src_h, box->resized_h) * src_w;
    uint8_t *out = dst + (size_t)(y + box->offset_y) * dst_w + box->offset_x;
    for (int x = 0; x < box->resized_w; x++) out[x] = row[nearest_source(x, src_w, box->resized_w)];
  }
}
