#include "mat_io.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <matio.h>

#include "check.h"

static uint32_t tag_word(const unsigned char *bytes, int swap) {
  return swap ? (uint32_t)bytes[0] << 24 | (uint32_t)bytes[1] << 16 | (uint32_t)bytes[2] << 8 |
                    bytes[3]
              : (uint32_t)bytes[3] << 24 | (uint32_t)bytes[2] << 16 | (uint32_t)bytes[1] << 8 |
                    bytes[0];
}

enum { MAT_MATRIX = 14, MAT_COMPRESSED = 15, MAT_NESTING_MAX = 16 };

/* Checks the data elements in [offset, end) of the file: each tag complete and each element's
 * declared bytes inside [offset, end); an uncompressed matrix's subelements likewise inside the
 * matrix (libmatio sizes its allocations from them: a dimensions field declaring 4 GB in a
 * 600-byte file made it ask for 8 GB). Returns 0 or -1 with the error. */
static int check_elements(FILE *file, const char *path, int big, long offset, long end, int depth,
                          char *error, size_t error_size) {
  unsigned char tag[8];
  if (depth > MAT_NESTING_MAX) {
    snprintf(error, error_size, "%s: matrices nested deeper than %d at byte %ld", path,
             MAT_NESTING_MAX, offset);
    return -1;
  }
  while (offset < end) {
    if (end - offset < 8 || fseek(file, offset, SEEK_SET) != 0 ||
        fread(tag, 1, sizeof tag, file) != sizeof tag) {
      snprintf(error, error_size, "%s: truncated: a data element's tag at byte %ld is cut short",
               path, offset);
      return -1;
    }
    uint32_t type = tag_word(tag, big), bytes = tag_word(tag + 4, big);
    if (type >> 16 != 0) { /* small element: its data is inside the tag */
      offset += 8;
      continue;
    }
    if ((long)bytes > end - offset - 8) {
      snprintf(error, error_size,
               "%s: truncated: the data element at byte %ld declares %u bytes but %s ends at "
               "byte %ld",
               path, offset, bytes, depth ? "its matrix" : "the file", end);
      return -1;
    }
    if (type == MAT_MATRIX && check_elements(file, path, big, offset + 8, offset + 8 + bytes,
                                             depth + 1, error, error_size) != 0)
      return -1;
    offset += 8 + (long)bytes + (type == MAT_COMPRESSED ? 0 : (long)((8 - bytes % 8) % 8));
  }
  return 0;
}

/* A version 5 MAT file is a 128-byte header and data elements, each an 8-byte tag (type,
 * byte count) and its bytes (padded to 8 unless compressed, type 15). libmatio reads a file cut
 * short without complaint, handing back part of a matrix, so every element's declared end must
 * lie within the file. Other versions (7.3 is HDF5) are left to their readers. Returns 0 or -1
 * with the error. */
static int check_v5_complete(FILE *file, const char *path, char *error, size_t error_size) {
  unsigned char header[128];
  if (fread(header, 1, sizeof header, file) != sizeof header) {
    snprintf(error, error_size, "%s: truncated: shorter than a MAT file's 128-byte header", path);
    return -1;
  }
  int little = header[126] == 'I' && header[127] == 'M',
      big = header[126] == 'M' && header[127] == 'I';
  int version = little ? header[124] | header[125] << 8 : header[124] << 8 | header[125];
  if ((!little && !big) || version != 0x0100) return 0;
  FP_CHECK(fseek(file, 0, SEEK_END) == 0, "%s: cannot seek: %s", path, strerror(errno));
  return check_elements(file, path, big, sizeof header, ftell(file), 0, error, error_size);
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
  double probe;
  int status = -1;
  if (var->rank != 2 || var->isComplex || !var->data || numeric_element(var, 0, &probe) < 0) {
    snprintf(error, error_size, "%s: variable '%s' is not a real 2-D numeric matrix", path, name);
    goto done;
  }
  size_t height = var->dims[0], width = var->dims[1];
  uint8_t *out = fp_malloc(height * width);
  for (size_t c = 0; c < width; c++)
    for (size_t r = 0; r < height; r++) {
      double value = 0;
      numeric_element(var, c * height + r, &value);
      if (!(value >= 0 && value <= 255 && value == floor(value))) {
        snprintf(error, error_size,
                 "%s: variable '%s' holds %g at row %zu, column %zu (not 0..255)", path, name,
                 value, r + 1, c + 1);
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
  if (!cell || cell->class_type != MAT_C_CHAR || cell->data_size <= 0) return NULL;
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
