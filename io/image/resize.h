/* Aspect-preserving resize into a fixed H x W canvas ("letterbox"). */
#ifndef FP_RESIZE_H
#define FP_RESIZE_H

#include <stdint.h>

#define RESIZE_MASK_FILL 255 /* ignore label around the resized mask */

/* scale = min(H/h, W/w); the photo becomes resized_h x resized_w pixels
 * (round(h*scale), round(w*scale)) with its top-left corner at (offset_y,
 * offset_x) = ((H - resized_h)/2, (W - resized_w)/2), integer division.
 * Output pixel (y, x) inside that box samples the source at pixel-centre
 * coordinates ((y - offset_y + 0.5) * h/resized_h - 0.5, same for x). */
typedef struct letterbox {
  float scale;
  int offset_y, offset_x, resized_h, resized_w;
} letterbox;

letterbox letterbox_fit(int src_h, int src_w, int dst_h, int dst_w);

/* RGB photo, bilinear (align_corners=False), padding 0. */
void resize_photo(const uint8_t *src, int src_h, int src_w, const letterbox *box, uint8_t *dst,
                  int dst_h, int dst_w);
/* resize_photo from a source whose src_h x src_w pixels hold the photo over
 * extent_h x extent_w of them (extent <= size; e.g. a DCT-scaled decode, whose
 * last row and column are partly padding): output pixel (y, x) inside the box
 * samples ((y - offset_y + 0.5) * extent_h/resized_h - 0.5, same for x),
 * clamped to the source. resize_photo is extent = size. */
void resize_photo_extent(const uint8_t *src, int src_h, int src_w, double extent_h, double extent_w,
                         const letterbox *box, uint8_t *dst, int dst_h, int dst_w);
/* Label mask, nearest neighbour, padding RESIZE_MASK_FILL. */
void resize_mask(const uint8_t *src, int src_h, int src_w, const letterbox *box, uint8_t *dst,
                 int dst_h, int dst_w);

#endif
