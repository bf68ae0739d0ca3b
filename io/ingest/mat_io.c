#include "mat_io.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <matio.h>
#include <zlib.h>

#include "check.h"

static uint32_t tag_word(const unsigned char *bytes, int swap) {
  return swap ? (uint32_t)bytes[0] << 24 | (uint32_t)bytes[1] << 16 | (uint32_t)bytes[2] << 8 |
                    bytes[3]
              : (uint32_t)bytes[3] << 24 | (uint32_t)bytes[2] << 16 | (uint32_t)bytes[1] << 8 |
                    bytes[0];
}

/* MAT v5 data types, array classes and flags (MathWorks, "MAT-File Format", 2013) */
enum {
  MAT_INT8 = 1,
  MAT_INT32 = 5,
  MAT_UINT32 = 6,
  MAT_SINGLE = 7,
  MAT_DOUBLE = 9,
  MAT_INT64 = 12,
  MAT_UINT64 = 13,
  MAT_MATRIX = 14,
  MAT_COMPRESSED = 15,
  MAT_UTF8 = 16,
  MAT_UTF32 = 18
};
enum { MAT_CLASS_CELL = 1, MAT_CLASS_CHAR = 4, MAT_CLASS_DOUBLE = 6, MAT_CLASS_UINT64 = 15 };
enum { MAT_FLAG_COMPLEX = 0x08, MAT_NESTING_MAX = 16 };
/* More than any annotation holds (a CCP mask inflates to 0.5 MB): refused before libmatio
 * would allocate it. */
#define MAT_BYTES_MAX ((size_t)1 << 30)

typedef struct mat_check {
  const char *path;
  int big;
  char *error;
  size_t error_size;
} mat_check;

static int refuse(const mat_check *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(const mat_check *m, const char *fmt, ...) {
  int n = snprintf(m->error, m->error_size, "%s: ", m->path);
  va_list args;
  va_start(args, fmt);
  if (n > 0 && (size_t)n < m->error_size)
    vsnprintf(m->error + n, m->error_size - (size_t)n, fmt, args);
  va_end(args);
  return -1;
}

/* A buffer of data elements: the file, or one compressed element inflated. */
typedef struct mat_buffer {
  const unsigned char *data;
  const char *name; /* "the file", "the element compressed at byte N" */
} mat_buffer;

/* What a run of data elements may hold: the file's variables (matrices, compressed or not),
 * a compressed element's variable (a matrix), a matrix's subelements (anything). */
typedef enum mat_level { MAT_FILE, MAT_INFLATED, MAT_SUBELEMENTS } mat_level;

static int check_elements(const mat_check *m, const mat_buffer *b, size_t offset, size_t end,
                          int depth, const char *container, mat_level level);

/* Inflates a compressed element's zlib stream whole (at most MAT_BYTES_MAX bytes) and checks
 * the elements inside it: libmatio inflates it itself and trusts what it finds. */
static int check_compressed(const mat_check *m, const unsigned char *data, size_t size, int depth,
                            const char *name) {
  z_stream z = {.next_in = (Bytef *)data, .avail_in = (uInt)size};
  if (size > UINT_MAX || inflateInit(&z) != Z_OK) return refuse(m, "cannot inflate %s", name);
  size_t capacity = size < 4096 ? 16384 : 4 * size, used = 0;
  if (capacity > MAT_BYTES_MAX) capacity = MAT_BYTES_MAX;
  unsigned char *out = NULL;
  int status = Z_OK;
  while (status == Z_OK && capacity <= MAT_BYTES_MAX) {
    unsigned char *grown = realloc(out, capacity);
    FP_CHECK(grown, "out of memory (%zu bytes inflating %s)", capacity, m->path);
    out = grown;
    z.next_out = out + used;
    z.avail_out = (uInt)(capacity - used);
    status = inflate(&z, Z_NO_FLUSH);
    used = capacity - z.avail_out;
    if (used == capacity) capacity *= 2;
  }
  int result;
  if (status == Z_STREAM_END) {
    mat_buffer inflated = {out, name};
    result = check_elements(m, &inflated, 0, used, depth + 1, name, MAT_INFLATED);
  } else if (status == Z_OK) {
    result = refuse(m, "%s inflates to more than %zu MiB", name, MAT_BYTES_MAX >> 20);
  } else {
    result = refuse(m, "truncated or corrupt: %s does not inflate whole (zlib: %s)", name,
                    z.msg ? z.msg : "the stream is cut short");
  }
  inflateEnd(&z);
  free(out);
  return result;
}

/* The subelement at `at` (its tag inside the matrix: checked before): its type, and in *next
 * where the one after it starts. */
static uint32_t subelement(const mat_check *m, const mat_buffer *b, size_t at, size_t *next) {
  uint32_t type = tag_word(b->data + at, m->big);
  if (type >> 16) { /* small element: its data is inside the tag */
    *next = at + 8;
    return type & 0xffff;
  }
  uint32_t bytes = tag_word(b->data + at + 4, m->big);
  *next = at + 8 + bytes + (8 - bytes % 8) % 8;
  return type;
}

static int is_data_type(uint32_t type) {
  return (type >= MAT_INT8 && type <= MAT_SINGLE) || type == MAT_DOUBLE || type == MAT_INT64 ||
         type == MAT_UINT64 || (type >= MAT_UTF8 && type <= MAT_UTF32);
}

/* A matrix's layout: array flags, dimensions, name, then for a numeric or character array its
 * real (and imaginary) data, for a cell array one matrix per element; other classes (struct,
 * object, sparse) are not in annotations and are refused. libmatio reads the header of every
 * variable while it looks for one, and sizes its allocations from the dimensions before it
 * reads any data (-3 x 2044 made it ask for 70 TB, a cell whose elements were not matrices
 * 2 GB), so: dimensions non-negative, no more elements than the matrix has bytes (each takes
 * at least one), and as many data elements as the class and dimensions say. `offset`: the
 * matrix's content, `bytes` long, its subelements already checked to lie inside it. */
static int check_matrix_layout(const mat_check *m, const mat_buffer *b, size_t offset,
                               uint32_t bytes) {
  if (bytes == 0) return 0; /* an empty array */
  size_t at = offset, end = offset + bytes, next, matrix = offset - 8;
  const unsigned char *flags = b->data + offset, *dims_tag = flags + 16;
  if (bytes < 24 || tag_word(flags, m->big) != MAT_UINT32 || tag_word(flags + 4, m->big) != 8)
    return refuse(m, "the matrix at byte %zu of %s does not start with its array flags", matrix,
                  b->name);
  uint32_t class = tag_word(flags + 8, m->big) & 0xff;
  int complex = (tag_word(flags + 8, m->big) >> 8 & MAT_FLAG_COMPLEX) != 0;
  uint32_t dims_type = tag_word(dims_tag, m->big);
  uint32_t dims_bytes = dims_type >> 16 ? dims_type >> 16 : tag_word(dims_tag + 4, m->big);
  const unsigned char *dims = dims_tag + (dims_type >> 16 ? 4 : 8);
  if ((dims_type & 0xffff) != MAT_INT32 || (dims_type >> 16 && dims_bytes > 4))
    return refuse(m, "the matrix at byte %zu of %s has no int32 dimensions", matrix, b->name);
  uint64_t elements = 1;
  for (uint32_t i = 0; i < dims_bytes / 4; i++) {
    int32_t dim = (int32_t)tag_word(dims + 4 * i, m->big);
    if (dim < 0)
      return refuse(m, "the matrix at byte %zu of %s has dimension %u = %d", matrix, b->name, i + 1,
                    dim);
    elements *= (uint64_t)dim;
    if (elements > bytes)
      return refuse(m, "the matrix at byte %zu of %s declares more elements than its %u bytes hold",
                    matrix, b->name, bytes);
  }
  subelement(m, b, offset + 16, &at);
  if (at >= end || subelement(m, b, at, &next) != MAT_INT8)
    return refuse(m, "the matrix at byte %zu of %s has no name", matrix, b->name);
  uint64_t count = 0;
  int all_matrices = 1, all_data = 1;
  for (at = next; at < end; at = next, count++) {
    uint32_t type = subelement(m, b, at, &next);
    all_matrices &= type == MAT_MATRIX;
    all_data &= is_data_type(type);
  }
  if (class == MAT_CLASS_CELL ? all_matrices && count == elements
      : class == MAT_CLASS_CHAR || (class >= MAT_CLASS_DOUBLE && class <= MAT_CLASS_UINT64)
          ? all_data && count == 1u + complex
          : 0)
    return 0;
  if (class != MAT_CLASS_CELL && class != MAT_CLASS_CHAR &&
      (class < MAT_CLASS_DOUBLE || class > MAT_CLASS_UINT64))
    return refuse(m,
                  "the matrix at byte %zu of %s is of class %u: not a numeric, character or "
                  "cell array (the only kinds annotations hold)",
                  matrix, b->name, class);
  return refuse(m, "the matrix at byte %zu of %s does not hold the data of its %llu elements",
                matrix, b->name, (unsigned long long)elements);
}

/* Checks the data elements in [offset, end) of a buffer: each tag complete and each element's
 * declared bytes inside [offset, end); a matrix's subelements likewise inside the matrix, and a
 * compressed element's content likewise once inflated (libmatio sizes its allocations from
 * them: a dimensions field declaring 4 GB in a 600-byte file made it ask for 8 GB). Returns 0
 * or -1 with the error. */
static int check_elements(const mat_check *m, const mat_buffer *b, size_t offset, size_t end,
                          int depth, const char *container, mat_level level) {
  if (depth > MAT_NESTING_MAX)
    return refuse(m, "matrices or compressed elements nested deeper than %d at byte %zu of %s",
                  MAT_NESTING_MAX, offset, b->name);
  while (offset < end) {
    if (end - offset < 8)
      return refuse(m, "truncated: a data element's tag at byte %zu of %s is cut short", offset,
                    b->name);
    uint32_t type = tag_word(b->data + offset, m->big);
    uint32_t bytes = tag_word(b->data + offset + 4, m->big);
    /* libmatio reads any other element where a variable belongs as one (a double array there
     * made it ask for 6 GB) */
    if (level != MAT_SUBELEMENTS &&
        !(type == MAT_MATRIX || (level == MAT_FILE && type == MAT_COMPRESSED)))
      return refuse(m,
                    "the data element at byte %zu of %s is of type %u where a variable (a %s) "
                    "belongs",
                    offset, b->name, type & 0xffff,
                    level == MAT_FILE ? "matrix, compressed or not" : "matrix");
    if (type >> 16 != 0) { /* small element: its data is inside the tag */
      offset += 8;
      continue;
    }
    if (bytes > end - offset - 8)
      return refuse(m,
                    "truncated: the data element at byte %zu of %s declares %u bytes but %s "
                    "ends at byte %zu",
                    offset, b->name, bytes, container, end);
    if (type == MAT_MATRIX && (check_elements(m, b, offset + 8, offset + 8 + bytes, depth + 1,
                                              "its matrix", MAT_SUBELEMENTS) ||
                               check_matrix_layout(m, b, offset + 8, bytes)))
      return -1;
    if (type == MAT_COMPRESSED) {
      char name[128];
      snprintf(name, sizeof name, "the element compressed at byte %zu of %s", offset, b->name);
      if (check_compressed(m, b->data + offset + 8, bytes, depth, name)) return -1;
    }
    offset += 8 + (size_t)bytes + (type == MAT_COMPRESSED ? 0 : (8 - bytes % 8) % 8);
  }
  return 0;
}

/* A version 5 MAT file is a 128-byte header and data elements, each an 8-byte tag (type,
 * byte count) and its bytes (padded to 8 unless compressed, type 15). libmatio reads a file cut
 * short without complaint, handing back part of a matrix, so every element's declared end must
 * lie within the file, and every compressed element must inflate whole. Version 7.3 (an HDF5
 * file) is left to HDF5; any other header is refused. Returns 0 or -1 with the error. */
static int check_v5_complete(FILE *file, const char *path, char *error, size_t error_size) {
  mat_check m = {.path = path, .error = error, .error_size = error_size};
  FP_CHECK(fseek(file, 0, SEEK_END) == 0, "%s: cannot seek: %s", path, strerror(errno));
  long length = ftell(file);
  FP_CHECK(length >= 0 && fseek(file, 0, SEEK_SET) == 0, "%s: cannot seek: %s", path,
           strerror(errno));
  if (length < 128) return refuse(&m, "truncated: shorter than a MAT file's 128-byte header");
  if ((size_t)length > MAT_BYTES_MAX)
    return refuse(&m, "%ld bytes: larger than the %zu MiB a .mat annotation may have", length,
                  MAT_BYTES_MAX >> 20);
  unsigned char *data = fp_malloc((size_t)length);
  FP_CHECK(fread(data, 1, (size_t)length, file) == (size_t)length, "%s: read error", path);
  int little = data[126] == 'I' && data[127] == 'M', big = data[126] == 'M' && data[127] == 'I';
  int version = little ? data[124] | data[125] << 8 : data[124] << 8 | data[125];
  m.big = big;
  int result;
  if ((little || big) && version == 0x0100)
    result = check_elements(&m, &(mat_buffer){data, "the file"}, 128, (size_t)length, 0, "the file",
                            MAT_FILE);
  else if ((little || big) && version == 0x0200)
    result = 0; /* 7.3: an HDF5 file, HDF5's to check */
  else          /* libmatio would try it as a version 4 file, sizing buffers from any 20 bytes */
    result = refuse(&m,
                    "not a MATLAB version 5, 7 or 7.3 .mat file (header bytes 124-127: "
                    "version %02x%02x, endian indicator '%c%c')",
                    data[124], data[125], data[126] >= 32 && data[126] < 127 ? data[126] : '?',
                    data[127] >= 32 && data[127] < 127 ? data[127] : '?');
  free(data);
  return result;
}

static matvar_t *read_variable(const char *path, const char *name, char *error, size_t error_size) {
  /* libmatio reports a missing or unreadable file like a malformed one, and reads a truncated
   * one without complaint: ask the system first, then check the file is whole */
  FILE *probe = fopen(path, "rb");
  if (!probe) {
    snprintf(error, error_size, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  int complete = check_v5_complete(probe, path, error, error_size);
  fclose(probe);
  if (complete != 0) return NULL;
  mat_t *mat = Mat_Open(path, MAT_ACC_RDONLY);
  if (!mat) {
    snprintf(error, error_size, "%s: cannot open as a MATLAB .mat file (libmatio Mat_Open)", path);
    return NULL;
  }
  matvar_t *var = Mat_VarRead(mat, name);
  Mat_Close(mat);
  if (!var) snprintf(error, error_size, "%s: no variable '%s' (libmatio Mat_VarRead)", path, name);
  return var;
}

/* The bytes of one element of a numeric class; 0 for other classes. */
static size_t numeric_element_size(enum matio_classes class_type) {
  switch (class_type) {
  case MAT_C_DOUBLE:
  case MAT_C_INT64:
  case MAT_C_UINT64:
    return 8;
  case MAT_C_SINGLE:
  case MAT_C_INT32:
  case MAT_C_UINT32:
    return 4;
  case MAT_C_INT16:
  case MAT_C_UINT16:
    return 2;
  case MAT_C_INT8:
  case MAT_C_UINT8:
    return 1;
  default:
    return 0;
  }
}

/* Element i of a numeric variable as a double; -1 for a non-numeric class. */
static int numeric_element(const matvar_t *var, size_t i, double *value) {
  switch (var->class_type) {
  case MAT_C_DOUBLE:
    *value = ((const double *)var->data)[i];
    return 0;
  case MAT_C_SINGLE:
    *value = ((const float *)var->data)[i];
    return 0;
  case MAT_C_INT8:
    *value = ((const int8_t *)var->data)[i];
    return 0;
  case MAT_C_UINT8:
    *value = ((const uint8_t *)var->data)[i];
    return 0;
  case MAT_C_INT16:
    *value = ((const int16_t *)var->data)[i];
    return 0;
  case MAT_C_UINT16:
    *value = ((const uint16_t *)var->data)[i];
    return 0;
  case MAT_C_INT32:
    *value = ((const int32_t *)var->data)[i];
    return 0;
  case MAT_C_UINT32:
    *value = ((const uint32_t *)var->data)[i];
    return 0;
  case MAT_C_INT64:
    *value = (double)((const int64_t *)var->data)[i];
    return 0;
  case MAT_C_UINT64:
    *value = (double)((const uint64_t *)var->data)[i];
    return 0;
  default:
    return -1;
  }
}

int mat_read_uint8_matrix(const char *path, const char *name, uint8_t **data, int *rows, int *cols,
                          char *error, size_t error_size) {
  *data = NULL;
  matvar_t *var = read_variable(path, name, error, error_size);
  if (!var) return -1;
  int status = -1;
  size_t element_size = numeric_element_size(var->class_type);
  if (var->rank != 2 || var->isComplex || !var->data || !element_size) {
    snprintf(error, error_size, "%s: variable '%s' is not a real 2-D numeric matrix", path, name);
    goto done;
  }
  size_t height = var->dims[0], width = var->dims[1];
  /* libmatio hands back what the data element held, which may be fewer values than the
   * dimensions say */
  if (var->data_size != (int)element_size || (width && height > SIZE_MAX / width / element_size) ||
      var->nbytes < height * width * element_size) {
    snprintf(error, error_size,
             "%s: variable '%s' is %zu x %zu but holds %zu bytes of %d-byte values", path, name,
             height, width, var->nbytes, var->data_size);
    goto done;
  }
  uint8_t *out = fp_malloc(height * width);
  /* one loop over the elements: 0 x 989855749 costs nothing (nested over the columns it took
   * 10 s; found by tests/fuzz) */
  for (size_t i = 0; i < height * width; i++) {
    size_t r = i % height, c = i / height;
    double value = 0;
    numeric_element(var, i, &value);
    if (!(value >= 0 && value <= 255 && value == floor(value))) {
      snprintf(error, error_size, "%s: variable '%s' holds %g at row %zu, column %zu (not 0..255)",
               path, name, value, r + 1, c + 1);
      free(out);
      goto done;
    }
    out[r * width + c] = (uint8_t)value;
  }
  *data = out;
  *rows = (int)height;
  *cols = (int)width;
  status = 0;
done:
  Mat_VarFree(var);
  return status;
}

static char *cell_string(const matvar_t *cell) {
  if (!cell || cell->class_type != MAT_C_CHAR ||
      (cell->data_size != 1 && cell->data_size != 2 && cell->data_size != 4))
    return NULL;
  size_t length = cell->data ? cell->nbytes / (size_t)cell->data_size : 0;
  char *text = fp_malloc(length + 1);
  for (size_t i = 0; i < length; i++) {
    if (cell->data_size == 1)
      text[i] = ((const char *)cell->data)[i];
    else if (cell->data_size == 2)
      text[i] = (char)((const uint16_t *)cell->data)[i];
    else
      text[i] = (char)((const uint32_t *)cell->data)[i];
  }
  text[length] = '\0';
  return text;
}

int mat_read_string_cell(const char *path, const char *name, char ***strings, int *count,
                         char *error, size_t error_size) {
  *strings = NULL;
  matvar_t *var = read_variable(path, name, error, error_size);
  if (!var) return -1;
  if (var->class_type != MAT_C_CELL) {
    snprintf(error, error_size, "%s: variable '%s' is not a cell array", path, name);
    Mat_VarFree(var);
    return -1;
  }
  size_t n = 1;
  for (int d = 0; d < var->rank; d++) n *= var->dims[d];
  char **out = fp_calloc(n, sizeof *out);
  for (size_t i = 0; i < n; i++) {
    out[i] = cell_string(Mat_VarGetCell(var, (int)i));
    if (!out[i]) {
      snprintf(error, error_size, "%s: element %zu of cell '%s' is not a string", path, i + 1,
               name);
      mat_free_strings(out, (int)n);
      Mat_VarFree(var);
      return -1;
    }
  }
  Mat_VarFree(var);
  *strings = out;
  *count = (int)n;
  return 0;
}

void mat_free_strings(char **strings, int count) {
  if (!strings) return;
  for (int i = 0; i < count; i++) free(strings[i]);
  free(strings);
}
