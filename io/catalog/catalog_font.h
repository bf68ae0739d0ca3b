/* A 5x7 bitmap font for the labels of preview images: lower-case letters
 * (upper case is drawn as lower case), digits and - _ . % / ( ) : , + = ;
 * any other character is drawn as '?'. */
#ifndef FP_CATALOG_FONT_H
#define FP_CATALOG_FONT_H

#include <stdint.h>

#define FONT_ADVANCE 6     /* pixels from one character to the next */
#define FONT_LINE_HEIGHT 9 /* pixels from one line to the next */

/* Draws text with its top-left corner at (y, x) into rgb [height][width][3],
 * clipped to the image. */
void font_draw_text(uint8_t *rgb, int height, int width, int y, int x, const char *text,
                    const uint8_t colour[3]);

#endif
