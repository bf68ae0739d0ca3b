#include "polygon.h"

#include <math.h>
#include <stdlib.h>

#include "check.h"

/* The row's crossing x of edge (x0, y0)-(x1, y1), or 0 when it does not cross. */
static int crossing(double x0, double y0, double x1, double y1, double cy, double *x) {
  if ((y0 <= cy) == (y1 <= cy)) return 0;
  *x = x0 + (cy - y0) * (x1 - x0) / (y1 - y0);
  return 1;
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int64_t polygon_fill(const double *xy, int points, int height, int width, uint8_t value,
                     uint8_t *mask) {
  if (points < 3) return 0;
  double min_y = xy[1], max_y = xy[1];
  for (int i = 1; i < points; i++) {
    min_y = fmin(min_y, xy[2 * i + 1]);
    max_y = fmax(max_y, xy[2 * i + 1]);
  }
  int first_row = (int)fmin(height, fmax(0, floor(min_y - 0.5)));
  int last_row = (int)fmax(-1, fmin(height - 1, ceil(max_y)));
  double *xs = fp_malloc((size_t)points * sizeof *xs);
  int64_t set = 0;
  for (int y = first_row; y <= last_row; y++) {
    double cy = y + 0.5;
    int n = 0;
    for (int i = 0; i < points; i++) {
      int j = (i + 1) % points;
      double x;
      if (!crossing(xy[2 * i], xy[2 * i + 1], xy[2 * j], xy[2 * j + 1], cy, &x)) continue;
      /* Beyond the outer pixel centres every comparison comes out the same. */
      xs[n++] = fmin(fmax(x, -1.0), width + 1.0);
    }
    /* O(n log n): a hostile polygon crosses a row thousands of times */
    qsort(xs, (size_t)n, sizeof *xs, compare_doubles);
    /* With the crossings sorted, a centre is inside when an odd number of
     * them lie at or left of it: cx in [xs[2m], xs[2m+1]). */
    for (int m = 0; m + 1 < n; m += 2) {
      int x = (int)ceil(xs[m] - 0.5);
      while (x - 0.5 >= xs[m]) x--; /* the first centre >= xs[m], exactly */
      while (x + 0.5 < xs[m]) x++;
      for (; x < width && x + 0.5 < xs[m + 1]; x++) {
        if (x < 0) continue;
        set += mask[(size_t)y * width + x] != value;
        mask[(size_t)y * width + x] = value;
      }
    }
  }
  free(xs);
  return set;
}
