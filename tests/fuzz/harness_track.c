#define FP_HARNESS_TRACK_IMPLEMENTATION
#include "harness_track.h"

#include <stdint.h>

/* Live allocations, each with its sequence number: open addressing with linear probing, no
 * tombstones (deletion shifts the cluster back), at most half full. */
typedef struct slot {
  void *pointer;
  uint64_t sequence;
} slot;
static slot *slots;
static size_t slot_count, live;
static uint64_t next_sequence = 1;

static size_t slot_of(const void *pointer) {
  uint64_t h = (uint64_t)(uintptr_t)pointer * 0x9e3779b97f4a7c15u;
  return (size_t)(h >> 20) & (slot_count - 1);
}

static void put(slot entry) {
  size_t i = slot_of(entry.pointer);
  while (slots[i].pointer) i = (i + 1) & (slot_count - 1);
  slots[i] = entry;
  live++;
}

static void grow(void) {
  slot *old = slots;
  size_t old_count = slot_count;
  slot_count = slot_count ? 2 * slot_count : 1024;
  slots = calloc(slot_count, sizeof *slots);
  if (!slots) abort();
  live = 0;
  for (size_t i = 0; i < old_count; i++)
    if (old[i].pointer) put(old[i]);
  free(old);
}

static void insert(void *pointer) {
  if (!pointer) return;
  if (2 * (live + 1) > slot_count) grow();
  put((slot){pointer, next_sequence++});
}

static void forget(const void *pointer) {
  if (!pointer || !slot_count) return;
  size_t i = slot_of(pointer);
  while (slots[i].pointer && slots[i].pointer != pointer) i = (i + 1) & (slot_count - 1);
  if (!slots[i].pointer) return; /* allocated by a library, not by code compiled here */
  slots[i].pointer = NULL;
  live--;
  for (size_t j = (i + 1) & (slot_count - 1); slots[j].pointer; j = (j + 1) & (slot_count - 1)) {
    size_t home = slot_of(slots[j].pointer);
    /* slots[j] may move to the hole at i when its home is not in (i, j] cyclically */
    if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
      slots[i] = slots[j];
      slots[j].pointer = NULL;
      i = j;
    }
  }
}

void *fuzz_track_malloc(size_t size) {
  void *p = malloc(size);
  insert(p);
  return p;
}

void *fuzz_track_calloc(size_t count, size_t size) {
  void *p = calloc(count, size);
  insert(p);
  return p;
}

void *fuzz_track_realloc(void *pointer, size_t size) {
  void *p = realloc(pointer, size);
  if (p) {
    forget(pointer);
    insert(p);
  }
  return p;
}

void fuzz_track_free(void *pointer) {
  forget(pointer);
  free(pointer);
}

char *fuzz_track_strdup(const char *text) {
  char *p = strdup(text);
  insert(p);
  return p;
}

ssize_t fuzz_track_getline(char **line, size_t *capacity, FILE *file) {
  char *before = *line;
  ssize_t n = getline(line, capacity, file);
  if (*line != before) {
    forget(before);
    insert(*line);
  }
  return n;
}

#define MAX_OPEN 64
static slot files[MAX_OPEN], directories[MAX_OPEN];

/* Puts handle into the first free entry of table; a parser holding more than MAX_OPEN at once
 * is not one of ours. */
static void remember(slot *table, void *handle) {
  if (!handle) return;
  for (int i = 0; i < MAX_OPEN; i++)
    if (!table[i].pointer) {
      table[i] = (slot){handle, next_sequence++};
      return;
    }
  abort();
}

static void unremember(slot *table, const void *handle) {
  for (int i = 0; i < MAX_OPEN; i++)
    if (table[i].pointer == handle) table[i].pointer = NULL;
}

FILE *fuzz_track_fopen(const char *path, const char *mode) {
  FILE *f = fopen(path, mode);
  remember(files, f);
  return f;
}

int fuzz_track_fclose(FILE *file) {
  unremember(files, file);
  return fclose(file);
}

DIR *fuzz_track_opendir(const char *path) {
  DIR *d = opendir(path);
  remember(directories, d);
  return d;
}

int fuzz_track_closedir(DIR *directory) {
  unremember(directories, directory);
  return closedir(directory);
}

uint64_t fuzz_track_mark(void) {
  return next_sequence;
}

void fuzz_track_release(uint64_t mark) {
  for (int i = 0; i < MAX_OPEN; i++) {
    if (files[i].pointer && files[i].sequence >= mark) fuzz_track_fclose(files[i].pointer);
    if (directories[i].pointer && directories[i].sequence >= mark)
      fuzz_track_closedir(directories[i].pointer);
  }
  /* forget reorders the table: collect first */
  size_t count = 0;
  void **doomed = malloc((live ? live : 1) * sizeof *doomed);
  if (!doomed) abort();
  for (size_t i = 0; i < slot_count; i++)
    if (slots[i].pointer && slots[i].sequence >= mark) doomed[count++] = slots[i].pointer;
  for (size_t i = 0; i < count; i++) fuzz_track_free(doomed[i]);
  free(doomed);
}
