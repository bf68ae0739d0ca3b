#include "catalog_source.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "catalog_idmap.h"
#include "check.h"
#include "dataset.h"
#include "h5check.h"
#include "hash.h"
#include "jpeg_io.h"
#include "string_table.h"

struct catalog {
  catalog_kind kind;
  char *path;
  int64_t count;
  /* packed, as a catalog may list 10 M images; paths of JPEG catalogs only */
  string_table ids;
  string_table paths;
  /* HDF5 catalogs */
  fp_dataset *dataset;
  int32_t (*source_size)[2];
  float (*letterbox_rows)[5];
};

static catalog *catalog_new(catalog_kind kind, const char *path) {
  catalog *c = fp_calloc(1, sizeof *c);
  c->kind = kind;
  c->path = strdup(path);
  FP_CHECK(c->path, "out of memory");
  return c;
}

static const char *id_of(const catalog *c, int64_t i) {
  return string_table_get(&c->ids, i);
}

static const char *jpeg_path(const catalog *c, int64_t i) {
  return string_table_get(&c->paths, i);
}

/* Checks the ids are unique (on the rank that opens the catalog), with an index that is freed
 * right after: nothing later looks an image up by id, and at 10 M images the index is 250 MB. */
static void check_unique_ids(const catalog *c) {
  id_map *rows = id_map_create(c->count, ID_MAP_BORROWS);
  for (int64_t i = 0; i < c->count; i++) {
    int64_t first = id_map_put(rows, id_of(c, i), i);
    if (first < 0) continue;
    if (c->kind == CATALOG_HDF5)
      FP_FATAL("%s: id '%s' appears twice in /ids (rows %lld and %lld)", c->path, id_of(c, i),
               (long long)first, (long long)i);
    FP_FATAL("%s: id '%s' appears twice: %s and %s", c->path, id_of(c, i), jpeg_path(c, first),
             jpeg_path(c, i));
  }
  id_map_free(rows);
}

/* The ids from a source: image i's is id(c, source, i, &length), `length` characters. */
typedef const char *(*id_source)(const catalog *c, const void *source, int64_t i, size_t *length);

/* Packs the count ids into c->ids. */
static void pack_ids(catalog *c, id_source id, const void *source) {
  for (int64_t i = 0; i < c->count; i++) {
    size_t length;
    const char *text = id(c, source, i, &length);
    string_table_add(&c->ids, text, length);
  }
}

/* ---- JPEG catalogs ---- */

static int has_jpeg_extension(const char *name) {
  const char *dot = strrchr(name, '.');
  return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

/* Image i's id, the file name of its path without directory and extension (not NUL-terminated:
 * *length characters). */
static const char *id_from_path(const catalog *c, const void *unused, int64_t i, size_t *length) {
  (void)unused;
  const char *path = jpeg_path(c, i);
  const char *slash = strrchr(path, '/');
  const char *name = slash ? slash + 1 : path;
  const char *dot = strrchr(name, '.');
  size_t n = dot && dot != name ? (size_t)(dot - name) : strlen(name);
  FP_CHECK(n > 0, "%s: '%s' gives an empty id", c->path, path);
  FP_CHECK(n < CATALOG_ID_LENGTH, "%s: the id of '%s' is longer than %d characters", c->path, path,
           CATALOG_ID_LENGTH - 1);
  *length = n;
  return name;
}

static int compare_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_directory(catalog *c) {
  DIR *d = opendir(c->path);
  FP_CHECK(d, "%s: cannot list the catalog directory: %s", c->path, strerror(errno));
  char **names = NULL;
  int64_t count = 0, capacity = 0;
  errno = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.' || !has_jpeg_extension(e->d_name)) continue;
    if (count == capacity) {
      capacity = capacity ? 2 * capacity : 1024;
      names = realloc(names, (size_t)capacity * sizeof *names);
      FP_CHECK(names, "out of memory");
    }
    names[count] = strdup(e->d_name);
    FP_CHECK(names[count++], "out of memory");
  }
  FP_CHECK(errno == 0, "%s: readdir: %s", c->path, strerror(errno));
  closedir(d);
  qsort(names, (size_t)count, sizeof *names, compare_names);
  for (int64_t i = 0; i < count; i++) {
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", c->path, names[i]);
    FP_CHECK(n > 0 && (size_t)n < sizeof path, "%s/%s: path too long", c->path, names[i]);
    string_table_add(&c->paths, path, strlen(path));
    free(names[i]);
  }
  free(names);
}

static void read_list_file(catalog *c) {
  FILE *f = fopen(c->path, "r");
  FP_CHECK(f, "%s: cannot open the catalog list: %s", c->path, strerror(errno));
  const char *slash = strrchr(c->path, '/');
  int dir_length = slash ? (int)(slash - c->path) : 0;
  char *line = NULL;
  size_t cap = 0;
  int line_no = 0;
  while (getline(&line, &cap, f) >= 0) {
    line_no++;
    char *s = line;
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
      s[--n] = '\0';
    if (!*s || *s == '#') continue;
    char path[4096];
    int written = s[0] == '/' || !slash
                      ? snprintf(path, sizeof path, "%s", s)
                      : snprintf(path, sizeof path, "%.*s/%s", dir_length, c->path, s);
    FP_CHECK(written > 0 && (size_t)written < sizeof path, "%s:%d: path too long", c->path,
             line_no);
    string_table_add(&c->paths, path, strlen(path));
  }
  int failed = ferror(f);
  free(line);
  fclose(f);
  FP_CHECK(!failed, "%s: read error", c->path);
}

static void limit_paths(catalog *c, int64_t limit) {
  if (limit > 0) string_table_truncate(&c->paths, limit);
  c->count = c->paths.count;
  pack_ids(c, id_from_path, NULL);
}

/* ---- HDF5 catalogs ---- */

/* Rows [0, count) of a [N, row] table into out. */
static void read_table(const catalog *c, hid_t file, const char *name, hid_t memory_type, int rank,
                       hsize_t row, void *out) {
  hid_t dataset = H5_ID(H5Dopen2(file, name, H5P_DEFAULT), "%s: %s", c->path, name);
  hid_t space = H5_ID(H5Dget_space(dataset), "%s: %s", c->path, name);
  hsize_t start[2] = {0, 0}, count[2] = {(hsize_t)c->count, row};
  if (c->count > 0) {
    H5_OK(H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL), "%s: %s", c->path,
          name);
    hid_t memory = H5_ID(H5Screate_simple(rank, count, NULL), "%s: %s", c->path, name);
    H5_OK(H5Dread(dataset, memory_type, memory, space, H5P_DEFAULT, out), "%s: %s", c->path, name);
    H5Sclose(memory);
  }
  H5Sclose(space);
  H5Dclose(dataset);
}

/* Image i's id in a table of NUL-terminated fixed-length ids (an HDF5 catalog's /ids). */
static const char *id_from_table(const catalog *c, const void *table, int64_t i, size_t *length) {
  (void)c;
  const char *id = ((const char(*)[CATALOG_ID_LENGTH])table)[i];
  *length = strlen(id);
  return id;
}

static void read_hdf5_tables(catalog *c) {
  hid_t file = H5_ID(H5Fopen(c->path, H5F_ACC_RDONLY, H5P_DEFAULT), "%s: open", c->path);
  hid_t id_type = H5_ID(H5Tcopy(H5T_C_S1), "string type");
  H5_OK(H5Tset_size(id_type, CATALOG_ID_LENGTH), "string type");
  H5_OK(H5Tset_strpad(id_type, H5T_STR_NULLTERM), "string type");
  size_t rows = (size_t)(c->count ? c->count : 1);
  char(*ids)[CATALOG_ID_LENGTH] = fp_calloc(rows, sizeof *ids);
  c->source_size = fp_calloc(rows, sizeof *c->source_size);
  c->letterbox_rows = fp_calloc(rows, sizeof *c->letterbox_rows);
  read_table(c, file, "/ids", id_type, 1, 0, ids);
  read_table(c, file, "/source_size", H5T_NATIVE_INT32, 2, 2, c->source_size);
  read_table(c, file, "/letterbox", H5T_NATIVE_FLOAT, 2, 5, c->letterbox_rows);
  H5Tclose(id_type);
  H5_OK(H5Fclose(file), "%s: close", c->path);
  int height = dataset_height(c->dataset), width = dataset_width(c->dataset);
  for (int64_t i = 0; i < c->count; i++) {
    FP_CHECK(memchr(ids[i], '\0', CATALOG_ID_LENGTH) && ids[i][0],
             "%s: /ids[%lld] is empty or not NUL-terminated", c->path, (long long)i);
    FP_CHECK(c->source_size[i][0] > 0 && c->source_size[i][1] > 0,
             "%s: /source_size[%lld] is %dx%d", c->path, (long long)i, c->source_size[i][0],
             c->source_size[i][1]);
    const float *box = c->letterbox_rows[i];
    FP_CHECK(box[1] >= 0 && box[2] >= 0 && box[3] >= 1 && box[4] >= 1 &&
                 box[1] + box[3] <= height && box[2] + box[4] <= width,
             "%s: /letterbox[%lld] (offset %gx%g, size %gx%g) does not fit the %dx%d images",
             c->path, (long long)i, box[1], box[2], box[3], box[4], height, width);
  }
  pack_ids(c, id_from_table, ids);
  free(ids);
}

static void open_hdf5(catalog *c, int64_t limit) {
  c->dataset = dataset_open(c->path);
  int64_t stored = dataset_count(c->dataset);
  c->count = limit > 0 && stored > limit ? limit : stored;
  read_hdf5_tables(c);
}

static catalog *checked_non_empty(catalog *c) {
  FP_CHECK(c->count > 0, "%s: the catalog has no images", c->path);
  check_unique_ids(c);
  return c;
}

catalog *catalog_open(const char *path, int64_t limit) {
  struct stat st;
  FP_CHECK(stat(path, &st) == 0, "%s: cannot open the catalog: %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode)) {
    catalog *c = catalog_new(CATALOG_DIRECTORY, path);
    list_directory(c);
    limit_paths(c, limit);
    return checked_non_empty(c);
  }
  if (H5Fis_hdf5(path) > 0) {
    catalog *c = catalog_new(CATALOG_HDF5, path);
    open_hdf5(c, limit);
    return checked_non_empty(c);
  }
  catalog *c = catalog_new(CATALOG_LIST, path);
  read_list_file(c);
  limit_paths(c, limit);
  return checked_non_empty(c);
}

/* What a transfer sends first: enough to allocate the rest. */
typedef struct transfer_header {
  int64_t kind, count, path_bytes, paths_bytes;
} transfer_header;

/* The byte ranges of a transfer: the header, the catalog's path, and for JPEG catalogs the
 * path table's arrays. */
static void fill_parts(catalog_transfer *t, const catalog *c) {
  const transfer_header *h = t->header;
  t->data[1] = c->path;
  t->bytes[1] = (size_t)h->path_bytes;
  t->count = 2;
  if (h->kind == CATALOG_HDF5) return;
  string_table_parts(&c->paths, t->data + 2, t->bytes + 2);
  t->count = 2 + STRING_TABLE_PARTS;
}

catalog_transfer catalog_transfer_send(const catalog *c) {
  catalog_transfer t = {0};
  transfer_header *h = fp_malloc(sizeof *h);
  *h = (transfer_header){c->kind, c->count, (int64_t)strlen(c->path) + 1,
                         c->kind == CATALOG_HDF5 ? 0 : (int64_t)c->paths.text_bytes};
  t.header = h;
  t.data[0] = h;
  t.bytes[0] = sizeof *h;
  fill_parts(&t, c);
  return t;
}

catalog_transfer catalog_transfer_receive(void) {
  catalog_transfer t = {0};
  t.header = fp_calloc(1, sizeof(transfer_header));
  t.data[0] = t.header;
  t.bytes[0] = sizeof(transfer_header);
  t.count = 1;
  return t;
}

void catalog_transfer_allocate(catalog_transfer *t) {
  const transfer_header *h = t->header;
  FP_CHECK(h->count >= 0 && h->path_bytes > 0 && h->paths_bytes >= 0,
           "catalog transfer: header %lld images, %lld and %lld bytes", (long long)h->count,
           (long long)h->path_bytes, (long long)h->paths_bytes);
  catalog *c = fp_calloc(1, sizeof *c);
  c->kind = (catalog_kind)h->kind;
  c->count = h->count;
  c->path = fp_calloc((size_t)h->path_bytes, 1);
  if (c->kind != CATALOG_HDF5) string_table_receive(&c->paths, h->count, (size_t)h->paths_bytes);
  t->receiving = c;
  fill_parts(t, c);
}

catalog *catalog_transfer_finish(catalog_transfer *t) {
  catalog *c = t->receiving;
  free(t->header);
  *t = (catalog_transfer){0};
  if (!c) return NULL;
  FP_CHECK(c->path[0] && memchr(c->path, '\0', strlen(c->path) + 1), "catalog transfer: path");
  if (c->kind == CATALOG_HDF5) {
    int64_t count = c->count;
    open_hdf5(c, count);
    FP_CHECK(c->count == count, "%s: has %lld images here but %lld on rank 0", c->path,
             (long long)c->count, (long long)count);
  } else {
    string_table_check(&c->paths, "catalog transfer: paths");
    pack_ids(c, id_from_path, NULL);
  }
  return c;
}

void catalog_close(catalog *c) {
  if (!c) return;
  if (c->dataset) dataset_close(c->dataset);
  string_table_free(&c->ids);
  string_table_free(&c->paths);
  free(c->source_size);
  free(c->letterbox_rows);
  free(c->path);
  free(c);
}

catalog_kind catalog_kind_of(const catalog *c) {
  return c->kind;
}
int64_t catalog_count(const catalog *c) {
  return c->count;
}

static void check_index(const catalog *c, int64_t i) {
  FP_CHECK(i >= 0 && i < c->count, "%s: image %lld of %lld", c->path, (long long)i,
           (long long)c->count);
}

const char *catalog_id(const catalog *c, int64_t i) {
  check_index(c, i);
  return id_of(c, i);
}

int catalog_stored_height(const catalog *c) {
  return c->dataset ? dataset_height(c->dataset) : 0;
}
int catalog_stored_width(const catalog *c) {
  return c->dataset ? dataset_width(c->dataset) : 0;
}

uint64_t catalog_listing_hash(const catalog *c) {
  uint64_t hash = FNV1A64_START;
  for (int64_t i = 0; i < c->count; i++)
    hash = fnv1a64_update(hash, id_of(c, i), strlen(id_of(c, i)) + 1);
  return hash;
}

static int fail(char *reason, size_t reason_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *reason, size_t reason_size, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(reason, reason_size, fmt, args);
  va_end(args);
  return -1;
}

int catalog_hash_image(catalog *c, int64_t i, uint64_t *hash, char *reason, size_t reason_size) {
  check_index(c, i);
  if (c->kind == CATALOG_HDF5) {
    size_t bytes = (size_t)dataset_height(c->dataset) * (size_t)dataset_width(c->dataset) * 3;
    uint8_t *image = fp_malloc(bytes);
    dataset_read_image(c->dataset, i, image);
    *hash = fnv1a64(image, bytes);
    free(image);
    return 0;
  }
  const char *path = jpeg_path(c, i);
  FILE *f = fopen(path, "rb");
  if (!f) return fail(reason, reason_size, "%s: cannot open: %s", path, strerror(errno));
  unsigned char block[1 << 16];
  uint64_t h = FNV1A64_START;
  size_t n;
  while ((n = fread(block, 1, sizeof block, f)) > 0) h = fnv1a64_update(h, block, n);
  int read_failed = ferror(f);
  fclose(f);
  if (read_failed) return fail(reason, reason_size, "%s: read error", path);
  *hash = h;
  return 0;
}

/* The letterbox of a photo into height x width, and the decoded size it needs. */
typedef struct letterbox_request {
  int height, width;
  letterbox box;
} letterbox_request;

static void cover_letterbox(void *context, int source_height, int source_width, int *min_height,
                            int *min_width) {
  letterbox_request *r = context;
  r->box = letterbox_fit(source_height, source_width, r->height, r->width);
  *min_height = r->box.resized_h;
  *min_width = r->box.resized_w;
}

int catalog_load_image(catalog *c, int64_t i, int height, int width, uint8_t *hwc,
                       catalog_geometry *geometry, char *reason, size_t reason_size) {
  check_index(c, i);
  if (c->kind == CATALOG_HDF5) {
    FP_CHECK(height == dataset_height(c->dataset) && width == dataset_width(c->dataset),
             "%s: images are stored at %dx%d, not %dx%d", c->path, dataset_height(c->dataset),
             dataset_width(c->dataset), height, width);
    dataset_read_image(c->dataset, i, hwc);
    const float *box = c->letterbox_rows[i];
    geometry->source_height = c->source_size[i][0];
    geometry->source_width = c->source_size[i][1];
    geometry->box = (letterbox){box[0], (int)box[1], (int)box[2], (int)box[3], (int)box[4]};
    return 0;
  }
  /* Decoded at the smallest DCT scale that still has at least the letterbox's pixels (the
   * letterbox itself from the photo's own size); the resize then maps the decoded pixels, which
   * span the photo over source * scale_num / 8 of them, onto that letterbox. */
  letterbox_request request = {.height = height, .width = width};
  jpeg_image photo;
  if (jpeg_read_rgb_covering(jpeg_path(c, i), cover_letterbox, &request, &photo, reason,
                             reason_size))
    return -1;
  geometry->source_height = photo.source_height;
  geometry->source_width = photo.source_width;
  geometry->box = request.box;
  resize_photo_extent(
      photo.pixels, photo.height, photo.width, photo.source_height * photo.scale_num / 8.0,
      photo.source_width * photo.scale_num / 8.0, &geometry->box, hwc, height, width);
  free(photo.pixels);
  return 0;
}
