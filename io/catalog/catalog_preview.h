/* Preview images for people: one panel per image (the photo, the photo with
 * the mask coloured over it, and a legend of the classes present with their
 * share of the photo), and a contact sheet tiling several panels. Class 0 is
 * taken to be background and left uncoloured; pixels outside the photo stay
 * as they are. */
#ifndef FP_CATALOG_PREVIEW_H
#define FP_CATALOG_PREVIEW_H

#include <stdint.h>

/* The overlay colour of each class: the PASCAL VOC colour map (class 0 black). */
void catalog_class_colours(int classes, uint8_t (*colours)[3]);

typedef struct preview_image {
  const char *id;
  const uint8_t *photo;        /* [H][W][3] letterboxed */
  const uint8_t *mask;         /* [H][W] class ids, 255 outside the photo */
  const float *pixel_fraction; /* [K] */
  int height, width;
} preview_image;

typedef struct preview_panel {
  uint8_t *rgb; /* malloc'd [height][width][3] */
  int height, width;
} preview_panel;

preview_panel catalog_preview_panel(const preview_image *image, int classes,
                                    char *const *class_names, const uint8_t (*colours)[3]);
/* Panels in rows of ceil(sqrt(count)), on a grey background. */
preview_panel catalog_contact_sheet(const preview_panel *panels, int count);

#endif
