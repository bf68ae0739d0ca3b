#include "labelmap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static void resolve_path(labelmap *map, const char *name_or_path) {
  if (strchr(name_or_path, '/')) {
    snprintf(map->path, sizeof map->path, "%s", name_or_path);
  } else {
    snprintf(map->path, sizeof map->path, "%s/%s.map", FP_LABELMAP_DIR, name_or_path);
  }
  const char *base = strrchr(map->path, '/') + 1;
  size_t length = strlen(base);
  if (length > 4 && !strcmp(base + length - 4, ".map")) length -= 4;
  FP_CHECK(length < sizeof map->name, "%s: label map name too long", map->path);
  memcpy(map->name, base, length);
  map->name[length] = '\0';
}

static int find_or_add_class(labelmap *map, const char *name, int line) {
  for (int k = 0; k < map->num_classes; k++)
    if (!strcmp(map->class_names[k], name)) return k;
  FP_CHECK(map->num_classes < LABELMAP_IGNORE, "%s:%d: more than %d target classes", map->path,
           line, LABELMAP_IGNORE);
  map->class_names[map->num_classes] = strdup(name);
  FP_CHECK(map->class_names[map->num_classes], "out of memory");
  return map->num_classes++;
}

static void take_identity(labelmap *map, char *const *source_names, int source_count, int line) {
  FP_CHECK(map->num_classes == 0, "%s:%d: 'identity' must be the only mapping", map->path, line);
  for (int s = 0; s < source_count; s++)
    map->target[s] = (int16_t)find_or_add_class(map, source_names[s], line);
  FP_CHECK(map->num_classes == source_count, "%s:%d: the source's class names are not unique",
           map->path, line);
}

static void parse_line(labelmap *map, char *text, int line, char *const *source_names,
                       int source_count, int *identity) {
  char *comment = strchr(text, '#');
  if (comment) *comment = '\0';
  char *first = strtok(text, " \t\r\n");
  if (!first) return;
  char *second = strtok(NULL, " \t\r\n");
  FP_CHECK(!strtok(NULL, " \t\r\n"), "%s:%d: expected '<source_id> <class name>'", map->path, line);
  FP_CHECK(!*identity, "%s:%d: 'identity' must be the only mapping", map->path, line);
  if (!second && !strcmp(first, "identity")) {
    take_identity(map, source_names, source_count, line);
    *identity = 1;
    return;
  }
  FP_CHECK(second, "%s:%d: expected '<source_id> <class name>' or 'identity'", map->path, line);
  char *end;
  errno = 0;
  long source_id = strtol(first, &end, 10);
  FP_CHECK(!errno && end != first && *end == '\0', "%s:%d: '%s' is not a source class id",
           map->path, line, first);
  FP_CHECK(source_id >= 0 && source_id < source_count,
           "%s:%d: source class id %ld out of range (the source has %d classes)", map->path, line,
           source_id, source_count);
  FP_CHECK(map->target[source_id] == LABELMAP_UNKNOWN, "%s:%d: source class id %ld mapped twice",
           map->path, line, source_id);
  if (!strcmp(second, "ignore")) {
    map->target[source_id] = LABELMAP_IGNORE;
  } else if (!strcmp(second, "drop")) {
    map->target[source_id] = LABELMAP_DROP;
  } else if (!strcmp(second, "!exclude")) {
    map->target[source_id] = LABELMAP_EXCLUDE;
  } else {
    FP_CHECK(second[0] != '!', "%s:%d: unknown directive '%s' (class names cannot start with '!')",
             map->path, line, second);
    map->target[source_id] = (int16_t)find_or_add_class(map, second, line);
  }
}

void labelmap_load(labelmap *map, const char *name_or_path, char *const *source_names,
                   int source_count) {
  memset(map, 0, sizeof *map);
  resolve_path(map, name_or_path);
  FP_CHECK(source_count > 0 && source_count <= LABELMAP_IGNORE,
           "%s: the source has %d classes (1..255 supported)", map->path, source_count);
  for (int s = 0; s < 256; s++) map->target[s] = LABELMAP_UNKNOWN;
  map->class_names = fp_calloc(LABELMAP_IGNORE, sizeof *map->class_names);
  FILE *file = fopen(map->path, "r");
  FP_CHECK(file, "label map %s: cannot open: %s", map->path, strerror(errno));
  char text[1024];
  int identity = 0;
  for (int line = 1; fgets(text, sizeof text, file); line++) {
    FP_CHECK(strchr(text, '\n') || feof(file), "%s:%d: line too long", map->path, line);
    parse_line(map, text, line, source_names, source_count, &identity);
  }
  FP_CHECK(!ferror(file), "%s: read error", map->path);
  fclose(file);
  FP_CHECK(map->num_classes > 0, "%s: maps no class", map->path);
}

void labelmap_free(labelmap *map) {
  for (int k = 0; k < map->num_classes; k++) free(map->class_names[k]);
  free(map->class_names);
  map->class_names = NULL;
  map->num_classes = 0;
}

labelmap_result labelmap_apply(const labelmap *map, uint8_t *labels, size_t count, int *source_id) {
  uint8_t present[256] = {0};
  for (size_t i = 0; i < count; i++) present[labels[i]] = 1;
  const int16_t checks[3] = {LABELMAP_UNKNOWN, LABELMAP_EXCLUDE, LABELMAP_DROP};
  const labelmap_result results[3] = {LABELMAP_HAS_UNKNOWN, LABELMAP_HAS_EXCLUDED,
                                      LABELMAP_HAS_DROPPED};
  for (int c = 0; c < 3; c++)
    for (int id = 0; id < 256; id++)
      if (present[id] && map->target[id] == checks[c]) {
        *source_id = id;
        return results[c];
      }
  for (size_t i = 0; i < count; i++) labels[i] = (uint8_t)map->target[labels[i]];
  return LABELMAP_MAPPED;
}
