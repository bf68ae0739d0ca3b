/* MATLAB .mat reading with libmatio. Errors return -1 with a message naming
 * the file and the variable in `error`; nothing is allocated then. */
#ifndef FP_MAT_IO_H
#define FP_MAT_IO_H

#include <stddef.h>
#include <stdint.h>

/* Reads the 2-D numeric variable `name` as uint8 in row-major order,
 * (*data)[r * cols + c] (MATLAB stores column-major; this transposes). Any
 * numeric class is accepted (CCP stores its labels as double) as long as
 * every value is an integer in 0..255. *data is malloc'd; the caller frees. */
int mat_read_uint8_matrix(const char *path, const char *name, uint8_t **data, int *rows, int *cols,
                          char *error, size_t error_size);

/* Reads the cell array of strings `name` in MATLAB's element order (for a
 * 1 x n cell, left to right). Free with mat_free_strings. */
int mat_read_string_cell(const char *path, const char *name, char ***strings, int *count,
                         char *error, size_t error_size);
void mat_free_strings(char **strings, int count);

#endif
