/* Label maps: how a source's class ids become the dataset's classes. Text
 * files in jobs/labelmaps/NAME.map (format in docs/dataset.md):
 *   identity             every source class keeps its id and its own name
 *   <source_id> <name>   source class -> target class <name>; targets are
 *                        numbered in order of first appearance
 *   <source_id> ignore   source class -> 255 (ignored by the loss)
 * '#' starts a comment. A source id the map does not list is unknown: data
 * holding it is an error. */
#ifndef FP_LABELMAP_H
#define FP_LABELMAP_H

#include <stddef.h>
#include <stdint.h>

#define LABELMAP_IGNORE 255
#define LABELMAP_UNKNOWN (-1)

typedef struct labelmap {
  char name[64]; /* the map's name: file name without directory and .map */
  char path[4096];
  int num_classes;
  char **class_names;  /* [num_classes] */
  int16_t target[256]; /* source id -> target id, LABELMAP_IGNORE or LABELMAP_UNKNOWN */
} labelmap;

/* `name_or_path`: a map name (looked up as <repo>/jobs/labelmaps/NAME.map) or
 * a path containing '/'. source_names[source_count] are the source's own class
 * names. FP_FATAL naming the map file and line on any error. */
void labelmap_load(labelmap *map, const char *name_or_path, char *const *source_names,
                   int source_count);
void labelmap_free(labelmap *map);

/* Maps labels in place. Returns 0, or -1 with *unknown_id set to the first
 * source id the map does not list (labels are then partly mapped). */
int labelmap_apply(const labelmap *map, uint8_t *labels, size_t count, int *unknown_id);

#endif
