#include "catalog_preview.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog_font.h"
#include "catalog_stats.h"
#include "check.h"

#define LEGEND_WIDTH 168
#define LEGEND_MARGIN 4
#define LEGEND_CLASSES 12 /* the largest classes listed; the rest are summed in one line */
#define SHEET_GAP 6

void catalog_class_colours(int classes, uint8_t (*colours)[3]) {
  for (int k = 0; k < classes; k++) {
    int r = 0, g = 0, b = 0;
    for (int bit = 7, c = k; bit >= 0; bit--, c >>= 3) {
      r |= (c & 1) << bit;
      g |= (c >> 1 & 1) << bit;
      b |= (c >> 2 & 1) << bit;
    }
    colours[k][0] = (uint8_t)r;
    colours[k][1] = (uint8_t)g;
    colours[k][2] = (uint8_t)b;
  }
}

static void fill_rect(uint8_t *rgb, int height, int width, int y, int x, int h, int w,
                      const uint8_t colour[3]) {
  for (int py = y; py < y + h && py < height; py++)
    for (int px = x; px < x + w && px < width; px++)
      memcpy(rgb + ((size_t)py * width + px) * 3, colour, 3);
}

static void paste(uint8_t *to, int to_width, int y, int x, const uint8_t *from, int from_height,
                  int from_width) {
  for (int row = 0; row < from_height; row++)
    memcpy(to + ((size_t)(y + row) * to_width + x) * 3, from + (size_t)row * from_width * 3,
           (size_t)from_width * 3);
}

/* Classes present, largest share first (ties: lower class id first). */
static int classes_by_share(const float *fraction, int classes, int *order) {
  int count = 0;
  for (int k = 0; k < classes; k++) {
    if (fraction[k] <= 0) continue;
    int at = count++;
    while (at > 0 && fraction[order[at - 1]] < fraction[k]) {
      order[at] = order[at - 1];
      at--;
    }
    order[at] = k;
  }
  return count;
}

preview_panel catalog_preview_panel(const preview_image *image, int classes,
                                    char *const *class_names, const uint8_t (*colours)[3]) {
  const int h = image->height, w = image->width;
  int *order = fp_malloc((size_t)classes * sizeof *order);
  int present = classes_by_share(image->pixel_fraction, classes, order);
  int listed = present > LEGEND_CLASSES ? LEGEND_CLASSES : present;
  preview_panel p;
  p.width = 2 * w + LEGEND_WIDTH;
  int legend_height = LEGEND_MARGIN + (listed + 2) * FONT_LINE_HEIGHT + LEGEND_MARGIN;
  p.height = h > legend_height ? h : legend_height;
  p.rgb = fp_malloc((size_t)p.height * p.width * 3);
  memset(p.rgb, 255, (size_t)p.height * p.width * 3);
  paste(p.rgb, p.width, 0, 0, image->photo, h, w);
  uint8_t *overlay = fp_malloc((size_t)h * w * 3);
  for (size_t i = 0; i < (size_t)h * w; i++) {
    int k = image->mask[i];
    for (int c = 0; c < 3; c++) {
      uint8_t photo = image->photo[i * 3 + c];
      overlay[i * 3 + c] = k == 0 || k == CATALOG_MASK_OUTSIDE || k >= classes
                               ? photo
                               : (uint8_t)((photo + colours[k][c] + 1) / 2);
    }
  }
  paste(p.rgb, p.width, 0, w, overlay, h, w);
  free(overlay);
  const uint8_t black[3] = {0, 0, 0};
  const int left = 2 * w + LEGEND_MARGIN;
  char line[96];
  snprintf(line, sizeof line, "%s", image->id);
  font_draw_text(p.rgb, p.height, p.width, LEGEND_MARGIN, left, line, black);
  int y = LEGEND_MARGIN + FONT_LINE_HEIGHT;
  double rest = 0;
  for (int i = 0; i < present; i++) {
    int k = order[i];
    if (i >= listed) {
      rest += image->pixel_fraction[k];
      continue;
    }
    fill_rect(p.rgb, p.height, p.width, y, left, 7, 10, colours[k]);
    snprintf(line, sizeof line, "%s %.1f%%", class_names[k], 100.0 * image->pixel_fraction[k]);
    font_draw_text(p.rgb, p.height, p.width, y, left + 14, line, black);
    y += FONT_LINE_HEIGHT;
  }
  if (present > listed) {
    snprintf(line, sizeof line, "%d more %.1f%%", present - listed, 100.0 * rest);
    font_draw_text(p.rgb, p.height, p.width, y, left + 14, line, black);
  }
  free(order);
  return p;
}

preview_panel catalog_contact_sheet(const preview_panel *panels, int count) {
  FP_CHECK(count > 0, "contact sheet of no panels");
  int columns = (int)ceil(sqrt((double)count)), rows = (count + columns - 1) / columns;
  int cell_height = 0, cell_width = 0;
  for (int i = 0; i < count; i++) {
    if (panels[i].height > cell_height) cell_height = panels[i].height;
    if (panels[i].width > cell_width) cell_width = panels[i].width;
  }
  preview_panel sheet;
  sheet.height = rows * (cell_height + SHEET_GAP) + SHEET_GAP;
  sheet.width = columns * (cell_width + SHEET_GAP) + SHEET_GAP;
  sheet.rgb = fp_malloc((size_t)sheet.height * sheet.width * 3);
  memset(sheet.rgb, 128, (size_t)sheet.height * sheet.width * 3);
  for (int i = 0; i < count; i++) {
    int y = SHEET_GAP + (i / columns) * (cell_height + SHEET_GAP);
    int x = SHEET_GAP + (i % columns) * (cell_width + SHEET_GAP);
    paste(sheet.rgb, sheet.width, y, x, panels[i].rgb, panels[i].height, panels[i].width);
  }
  return sheet;
}
