/* io/ingest/mat_io.c through libmatio: the input is a .mat file; the variables CCP's files hold
 * are read as a uint8 matrix (groundtruth, tags) and a string cell (label_list). */
#include <stdlib.h>

#include "harness_common.h"
#include "mat_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write_file("input.mat", data, size);
  static const char *matrices[] = {"groundtruth", "tags"};
  char error[1024];
  for (int m = 0; m < 2; m++) {
    uint8_t *labels;
    int rows, cols;
    if (mat_read_uint8_matrix(path, matrices[m], &labels, &rows, &cols, error, sizeof error) == 0) {
      fuzz_require(rows >= 0 && cols >= 0, "matrix size");
      free(labels);
    } else {
      fuzz_require(labels == NULL && error[0], "a failure allocates nothing and says why");
    }
  }
  char **names;
  int count;
  if (mat_read_string_cell(path, "label_list", &names, &count, error, sizeof error) == 0)
    mat_free_strings(names, count);
  else
    fuzz_require(names == NULL && error[0], "a failure allocates nothing and says why");
  return 0;
}
