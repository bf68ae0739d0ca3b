/* Polygon rasterisation for polygon-annotated masks (DeepFashion2). */
#ifndef FP_POLYGON_H
#define FP_POLYGON_H

#include <stdint.h>

/* Sets to `value` every pixel of the row-major height x width `mask` whose
 * centre lies inside the polygon xy[2*points] = x0, y0, x1, y1, ... (pixel
 * (x, y) covers [x, x+1) x [y, y+1), so its centre is (x + 0.5, y + 0.5)).
 * Even-odd rule: the centre (cx, cy) is inside when an odd number of edges
 * (x0, y0)-(x1, y1), the last one closing the polygon, has
 * (y0 <= cy) != (y1 <= cy) and crosses that row at
 * x0 + (cy - y0) * (x1 - x0) / (y1 - y0) > cx. Vertices may lie outside the
 * image; fewer than 3 points cover nothing. Returns how many pixels changed
 * to `value`. */
int64_t polygon_fill(const double *xy, int points, int height, int width, uint8_t value,
                     uint8_t *mask);

#endif
