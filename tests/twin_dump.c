/* Reads the PyTorch twin's dumps (twin_dump.h) in either format.
 *
 * The tensor directory ("twin-dump 1"), which tests/twin/unet_twin.py writes when --out ends in
 * ".twin", needs no library on either side (Python: torch and the standard library). It is a
 * directory, conventionally DUMP.twin/, of two files:
 *
 *   data.bin   every dataset's elements, raw, little-endian, row-major (C order), the datasets
 *              one after another with no padding (index.txt gives each one's offset).
 *   index.txt  UTF-8 text, one item a line, fields separated by one space, every line ending
 *              in '\n' (the last one too):
 *                twin-dump 1                      the first line: the format and its version
 *                attribute NAME KIND VALUE        an attribute of the root
 *                dataset NAME TYPE DIMS OFFSET    a dataset
 *              NAME, without whitespace: the item's name in the HDF5 dump. An attribute's is
 *                its own ("arch", "max_lr"); a dataset's is its path from the root, groups as
 *                path prefixes ("/loss", "/params/encoder.conv1.weight", "/peer_bf16/after/lrs").
 *              KIND: long (a decimal integer), double (a decimal number, "inf" or "nan", as
 *                Python's repr writes it; strtod reads it back exactly) or string (VALUE is the
 *                rest of the line: possibly empty, possibly with spaces, no newline).
 *              TYPE: f32 or f64 (IEEE 754 binary32, binary64) or u8.
 *              DIMS: the shape, "2x3x64x64", "5", "0" (no elements), or "scalar" (one element).
 *              OFFSET: where the dataset's bytes start in data.bin, in bytes, decimal.
 *
 *   twin-dump 1
 *   attribute arch string r18
 *   attribute classes long 5
 *   attribute max_lr double 0.001
 *   dataset /input f32 2x3x64x64 0
 *   dataset /labels u8 2x64x64 98304
 *   dataset /class_weights f32 5 106496
 *   dataset /output f32 2x5x64x64 106516
 *   dataset /loss f64 scalar 270356
 *
 * Items may come in any order. The writer writes index.txt last, so a dump cut short by a
 * failed run has none. The reader checks every dataset lies within data.bin.
 *
 * The HDF5 dump (h5_tensors.h; only when built with FP_HAVE_HDF5) has the same items: the
 * datasets at those paths (float32, float64 and uint8) and the attributes on the root group. */
#include "twin_dump.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "check.h"
#ifdef FP_HAVE_HDF5
#include "h5_tensors.h"
#endif

typedef enum element_type { ELEMENT_F32, ELEMENT_F64, ELEMENT_U8, ELEMENT_TYPES } element_type;
static const char *const element_names[ELEMENT_TYPES] = {"f32", "f64", "u8"};
static const size_t element_sizes[ELEMENT_TYPES] = {4, 8, 1};

typedef struct dir_dataset {
  const char *name; /* without the leading '/'; points into the index text */
  element_type type;
  size_t count; /* elements */
  off_t offset; /* bytes into data.bin */
} dir_dataset;

typedef struct dir_attribute {
  const char *name, *kind, *value; /* point into the index text */
} dir_attribute;

struct twin_dump {
  char *path;
  int hdf5; /* else a tensor directory */
#ifdef FP_HAVE_HDF5
  hid_t file;
#endif
  char *index; /* index.txt, its lines cut into NUL-terminated fields */
  dir_dataset *datasets;
  dir_attribute *attributes;
  int dataset_count, attribute_count;
  FILE *data; /* data.bin */
};

static int little_endian(void) {
  const uint32_t one = 1;
  unsigned char first;
  memcpy(&first, &one, 1);
  return first == 1;
}

/* path/name into out (cap bytes) */
static void dump_file(char *out, size_t cap, const char *path, const char *name) {
  int n = snprintf(out, cap, "%s/%s", path, name);
  FP_CHECK(n > 0 && (size_t)n < cap, "path too long: %s/%s", path, name);
}

static char *read_text(const char *file) {
  FILE *f = fopen(file, "rb");
  if (!f) FP_FATAL("cannot open %s: %s", file, strerror(errno));
  struct stat st;
  FP_CHECK(fstat(fileno(f), &st) == 0, "cannot stat %s: %s", file, strerror(errno));
  size_t size = (size_t)st.st_size;
  char *text = fp_malloc(size + 1);
  FP_CHECK(fread(text, 1, size, f) == size, "cannot read %s", file);
  text[size] = '\0';
  FP_CHECK(strlen(text) == size, "%s: not text (holds a NUL byte)", file);
  fclose(f);
  return text;
}

/* The next field of a line: up to the next space, which is cut; the rest if there is none. */
static char *cut_field(char **cursor) {
  char *field = *cursor, *space = strchr(field, ' ');
  if (space) {
    *space = '\0';
    *cursor = space + 1;
  } else {
    *cursor = field + strlen(field);
  }
  return field;
}

/* A decimal number of digits only, at most limit; returns 0, or -1 if it is not one. */
static int parse_size(const char *text, const char **end, unsigned long long limit,
                      unsigned long long *value) {
  if (*text < '0' || *text > '9') return -1;
  errno = 0;
  char *stop;
  *value = strtoull(text, &stop, 10);
  *end = stop;
  return errno || *value > limit ? -1 : 0;
}

/* "scalar" or NxNx...; the product into count. Returns 0, or -1 if malformed. */
static int parse_dims(const char *text, size_t *count) {
  *count = 1;
  if (!strcmp(text, "scalar")) return 0;
  for (const char *p = text;; p++) {
    unsigned long long n;
    if (parse_size(p, &p, SIZE_MAX, &n) != 0) return -1;
    if (n && *count > SIZE_MAX / n) return -1;
    *count *= (size_t)n;
    if (*p == '\0') return 0;
    if (*p != 'x') return -1;
  }
}

static void parse_dataset(twin_dump *d, char *fields, int line, unsigned long long data_size) {
  char *name = cut_field(&fields), *type = cut_field(&fields), *dims = cut_field(&fields);
  char *offset = cut_field(&fields);
  dir_dataset *s = &d->datasets[d->dataset_count++];
  const char *end = "";
  unsigned long long start;
  s->type = ELEMENT_TYPES;
  for (int t = 0; t < ELEMENT_TYPES; t++)
    if (!strcmp(type, element_names[t])) s->type = (element_type)t;
  if (name[0] != '/' || name[1] == '\0' || s->type == ELEMENT_TYPES || *fields ||
      parse_dims(dims, &s->count) != 0 || parse_size(offset, &end, ULLONG_MAX, &start) != 0 || *end)
    FP_FATAL("%s/index.txt line %d: not \"dataset /NAME f32|f64|u8 DIMS OFFSET\"", d->path, line);
  s->name = name + 1;
  s->offset = (off_t)start;
  size_t element = element_sizes[s->type];
  if (start > data_size || s->count > (data_size - start) / element)
    FP_FATAL("%s: dataset %s (%zu x %s at byte %llu) runs past the end of data.bin (%llu bytes)",
             d->path, name, s->count, type, start, data_size);
}

static void parse_attribute(twin_dump *d, char *fields, int line) {
  dir_attribute *a = &d->attributes[d->attribute_count++];
  a->name = cut_field(&fields);
  a->kind = cut_field(&fields);
  a->value = fields; /* the rest of the line */
  if (!a->name[0] ||
      (strcmp(a->kind, "long") && strcmp(a->kind, "double") && strcmp(a->kind, "string")))
    FP_FATAL("%s/index.txt line %d: not \"attribute NAME long|double|string VALUE\"", d->path,
             line);
}

static void parse_index(twin_dump *d, unsigned long long data_size) {
  static const char header[] = "twin-dump 1\n";
  if (strncmp(d->index, header, sizeof header - 1))
    FP_FATAL("%s/index.txt: not a twin dump index (the first line is not \"twin-dump 1\")",
             d->path);
  int lines = 0;
  for (const char *c = d->index; *c; c++) lines += *c == '\n';
  d->datasets = fp_calloc((size_t)lines, sizeof *d->datasets);
  d->attributes = fp_calloc((size_t)lines, sizeof *d->attributes);
  char *cursor = d->index + sizeof header - 1;
  for (int line = 2; *cursor; line++) {
    char *fields = cursor, *end = strchr(cursor, '\n');
    if (!end) FP_FATAL("%s/index.txt line %d: no line end (the file is cut short)", d->path, line);
    *end = '\0';
    cursor = end + 1;
    char *keyword = cut_field(&fields);
    if (!strcmp(keyword, "dataset"))
      parse_dataset(d, fields, line, data_size);
    else if (!strcmp(keyword, "attribute"))
      parse_attribute(d, fields, line);
    else
      FP_FATAL("%s/index.txt line %d: \"%s\" is neither dataset nor attribute", d->path, line,
               keyword);
  }
}

static void dir_open(twin_dump *d) {
  FP_CHECK(little_endian(), "%s: the .twin format is little-endian, this machine is not", d->path);
  char file[4096];
  dump_file(file, sizeof file, d->path, "index.txt");
  d->index = read_text(file);
  dump_file(file, sizeof file, d->path, "data.bin");
  d->data = fopen(file, "rb");
  if (!d->data) FP_FATAL("cannot open %s: %s", file, strerror(errno));
  struct stat st;
  FP_CHECK(fstat(fileno(d->data), &st) == 0, "cannot stat %s: %s", file, strerror(errno));
  parse_index(d, (unsigned long long)st.st_size);
}

static const dir_dataset *dir_find(const twin_dump *d, const char *name) {
  if (name[0] == '/') name++;
  for (int i = 0; i < d->dataset_count; i++)
    if (!strcmp(d->datasets[i].name, name)) return &d->datasets[i];
  return NULL;
}

static void dir_check_count(const twin_dump *d, const dir_dataset *s, size_t count) {
  if (s->count != count)
    FP_FATAL("%s: dataset /%s has %zu elements, expected %zu", d->path, s->name, s->count, count);
}

static void dir_read(twin_dump *d, const dir_dataset *s, void *out) {
  if (s->count == 0) return;
  if (fseeko(d->data, s->offset, SEEK_SET) != 0 ||
      fread(out, element_sizes[s->type], s->count, d->data) != s->count)
    FP_FATAL("%s: cannot read dataset /%s from data.bin: %s", d->path, s->name,
             ferror(d->data) ? strerror(errno) : "the file is cut short");
}

static int dir_read_floats(twin_dump *d, const char *name, float *out, size_t count) {
  const dir_dataset *s = dir_find(d, name);
  if (!s) return -1;
  if (s->type == ELEMENT_U8) FP_FATAL("%s: dataset /%s is not floating point", d->path, s->name);
  dir_check_count(d, s, count);
  if (s->type == ELEMENT_F32) {
    dir_read(d, s, out);
    return 0;
  }
  double *wide = fp_malloc((count ? count : 1) * sizeof *wide);
  dir_read(d, s, wide);
  for (size_t i = 0; i < count; i++) out[i] = (float)wide[i];
  free(wide);
  return 0;
}

static int dir_read_u8(twin_dump *d, const char *name, uint8_t *out, size_t count) {
  const dir_dataset *s = dir_find(d, name);
  if (!s) return -1;
  if (s->type != ELEMENT_U8) FP_FATAL("%s: dataset /%s is not u8", d->path, s->name);
  dir_check_count(d, s, count);
  dir_read(d, s, out);
  return 0;
}

/* The attribute's value text, which must be of kind `kind` (or of `also`, when not NULL). */
static const char *dir_attribute_value(const twin_dump *d, const char *name, const char *kind,
                                       const char *also) {
  for (int i = 0; i < d->attribute_count; i++) {
    const dir_attribute *a = &d->attributes[i];
    if (strcmp(a->name, name)) continue;
    if (strcmp(a->kind, kind) && (!also || strcmp(a->kind, also)))
      FP_FATAL("%s: attribute '%s' is a %s, not a %s", d->path, name, a->kind, kind);
    return a->value;
  }
  FP_FATAL("%s: attribute '%s' is missing", d->path, name);
}

twin_dump *twin_dump_open(const char *path) {
  twin_dump *d = fp_calloc(1, sizeof *d);
  d->path = fp_malloc(strlen(path) + 1);
  strcpy(d->path, path);
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/') n--;
  struct stat st;
  if ((stat(path, &st) == 0 && S_ISDIR(st.st_mode)) ||
      (n >= 5 && !strncmp(path + n - 5, ".twin", 5))) {
    dir_open(d);
    return d;
  }
#ifdef FP_HAVE_HDF5
  d->hdf5 = 1;
  d->file = h5_open_read(path);
  return d;
#else
  FP_FATAL("%s: built without HDF5: use a .twin dump (tests/twin/unet_twin.py --out DUMP.twin)",
           path);
#endif
}

void twin_dump_close(twin_dump *d) {
#ifdef FP_HAVE_HDF5
  if (d->hdf5) H5Fclose(d->file);
#endif
  if (d->data) fclose(d->data);
  free(d->datasets);
  free(d->attributes);
  free(d->index);
  free(d->path);
  free(d);
}

#ifdef FP_HAVE_HDF5
static int h5_read_u8(twin_dump *d, const char *name, uint8_t *out, size_t count) {
  if (H5Lexists(d->file, name, H5P_DEFAULT) <= 0) return -1;
  hid_t set = H5Dopen2(d->file, name, H5P_DEFAULT);
  if (set < 0) FP_FATAL("%s: cannot open dataset %s", d->path, name);
  hid_t space = H5Dget_space(set);
  hssize_t points = H5Sget_simple_extent_npoints(space);
  if (points < 0 || (size_t)points != count)
    FP_FATAL("%s: dataset %s has %lld elements, expected %zu", d->path, name, (long long)points,
             count);
  H5_CHECK(H5Dread(set, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, out));
  H5Sclose(space);
  H5Dclose(set);
  return 0;
}
#endif

int twin_dump_read_floats(twin_dump *d, const char *name, float *out, size_t count) {
#ifdef FP_HAVE_HDF5
  if (d->hdf5) return h5_read_floats(d->file, d->path, name, out, count);
#endif
  return dir_read_floats(d, name, out, count);
}

int twin_dump_read_u8(twin_dump *d, const char *name, uint8_t *out, size_t count) {
#ifdef FP_HAVE_HDF5
  if (d->hdf5) return h5_read_u8(d, name, out, count);
#endif
  return dir_read_u8(d, name, out, count);
}

long twin_dump_attr_long(twin_dump *d, const char *name) {
#ifdef FP_HAVE_HDF5
  if (d->hdf5) return h5_read_attr_long(d->file, d->path, name);
#endif
  const char *text = dir_attribute_value(d, name, "long", NULL);
  char *end;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (errno || end == text || *end)
    FP_FATAL("%s: attribute '%s' is not an integer: '%s'", d->path, name, text);
  return value;
}

double twin_dump_attr_double(twin_dump *d, const char *name) {
#ifdef FP_HAVE_HDF5
  if (d->hdf5) return h5_read_attr_double(d->file, d->path, name);
#endif
  const char *text = dir_attribute_value(d, name, "double", "long");
  char *end;
  double value = strtod(text, &end);
  if (end == text || *end)
    FP_FATAL("%s: attribute '%s' is not a number: '%s'", d->path, name, text);
  return value;
}

void twin_dump_attr_string(twin_dump *d, const char *name, char *out, size_t cap) {
#ifdef FP_HAVE_HDF5
  if (d->hdf5) {
    h5_read_attr_string(d->file, d->path, name, out, cap);
    return;
  }
#endif
  const char *text = dir_attribute_value(d, name, "string", NULL);
  FP_CHECK(strlen(text) < cap, "%s: attribute '%s' is too long", d->path, name);
  strcpy(out, text);
}

void twin_dump_read_tensor_list(twin_dump *d, const char *group, const tensor_list *list,
                                float *host) {
  char path[256];
  for (int i = 0; i < list->count; i++) {
    const named_tensor *t = &list->items[i];
    int n = snprintf(path, sizeof path, "%s/%s", group, t->name);
    FP_CHECK(n > 0 && (size_t)n < sizeof path, "%s: tensor path too long: %s/%s", d->path, group,
             t->name);
    if (twin_dump_read_floats(d, path, host + t->offset, t->count) != 0)
      FP_FATAL("%s: tensor %s is missing", d->path, path);
  }
}
