/* Label maps: how a source's class ids become the dataset's classes. Text
 * files in jobs/labelmaps/NAME.map (format in docs/dataset.md):
 *   identity              every source class keeps its id and its own name
 *   <source_id> <name>    source class -> target class <name>; targets are
 *                         numbered in order of first appearance
 *   <source_id> ignore    source class -> 255 (ignored by the loss)
 *   <source_id> drop      instances of the class are not drawn (sources
 *                         annotated by instances only; dense masks cannot)
 *   <source_id> !exclude  an image holding the class is left out
 * '#' starts a comment. A source id the map does not list is unknown: data
 * holding it is an error. */
#ifndef FP_LABELMAP_H
#define FP_LABELMAP_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"

#define LABELMAP_IGNORE DATASET_IGNORE_LABEL
#define LABELMAP_UNKNOWN (-1)
#define LABELMAP_DROP (-2)
#define LABELMAP_EXCLUDE (-3)

typedef struct labelmap {
  char name[64]; /* the map's name: file name without directory and .map */
  char path[4096];
  int num_classes;
  char **class_names;  /* [num_classes] */
  int16_t target[256]; /* source id -> target id, LABELMAP_IGNORE, _UNKNOWN, _DROP or _EXCLUDE */
} labelmap;

/* `name_or_path`: a map name (looked up as <repo>/jobs/labelmaps/NAME.map) or
 * a path containing '/'. source_names[source_count] are the source's own class
 * names. FP_FATAL naming the map file and line on any error. */
void labelmap_load(labelmap *map, const char *name_or_path, char *const *source_names,
                   int source_count);
void labelmap_free(labelmap *map);

typedef enum labelmap_result {
  LABELMAP_MAPPED,
  LABELMAP_HAS_UNKNOWN,  /* a source id the map does not list */
  LABELMAP_HAS_EXCLUDED, /* a source id marked !exclude: leave the image out */
  LABELMAP_HAS_DROPPED,  /* a source id marked drop, which dense labels cannot honour */
} labelmap_result;

/* Maps dense labels (a mask or a tag list) in place. On anything but
 * LABELMAP_MAPPED the labels are unchanged and *source_id is the offending id
 * (the lowest one; an unknown id is reported before an excluded one, an
 * excluded one before a dropped one). */
labelmap_result labelmap_apply(const labelmap *map, uint8_t *labels, size_t count, int *source_id);

#endif
