/* Colour of garment regions: sRGB <-> linear RGB, CIELAB (D65), CIEDE2000 and a
 * small palette of colour names (table in docs/parse_catalog.md).
 *
 * A region's mean colour is the mean of its pixels in linear RGB (the average
 * of the light, not of the gamma-encoded numbers), reported gamma-encoded as
 * sRGB 0..255 and as CIELAB; its name is the palette entry nearest in
 * CIEDE2000. */
#ifndef FP_COLOUR_H
#define FP_COLOUR_H

#include <stdint.h>

#define COLOUR_PALETTE_SIZE 16
#define COLOUR_NAME_LENGTH 16 /* longest name + NUL, fits the HDF5 string type */

typedef struct colour_palette_entry {
  const char *name;
  uint8_t srgb[3]; /* the anchor the entry is defined by */
} colour_palette_entry;

extern const colour_palette_entry colour_palette[COLOUR_PALETTE_SIZE];

/* sRGB byte -> linear RGB in [0,1] (a table). */
float colour_srgb_to_linear(uint8_t value);
/* Linear [0,1] -> sRGB in [0,255] (not rounded). */
double colour_linear_to_srgb(double linear);
/* Linear RGB -> CIELAB, D65 white. */
void colour_linear_to_lab(const double linear[3], double lab[3]);
/* CIELAB of palette entry i (from its sRGB anchor). */
void colour_palette_lab(int i, double lab[3]);
/* Index of the palette entry nearest to lab in CIEDE2000. */
int colour_nearest(const double lab[3]);

#endif
