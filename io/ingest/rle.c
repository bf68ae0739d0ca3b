#include "rle.h"

#include <stdio.h>
#include <stdlib.h>

#include "check.h"

/* An unsigned decimal number at *text (after spaces) of at most 15 digits:
 * 1, or 0 at the end of the text, -1 on anything else. */
static int read_number(const char **text, int64_t *value) {
  const char *s = *text;
  while (*s == ' ') s++;
  if (!*s) return 0;
  int64_t v = 0;
  int digits = 0;
  for (; *s >= '0' && *s <= '9'; s++)
    if (++digits <= 15) v = v * 10 + (*s - '0');
  if (digits == 0 || digits > 15 || (*s && *s != ' ')) return -1;
  *value = v;
  *text = s;
  return 1;
}

int rle_parse(const char *text, int64_t pixels, rle_run **runs, int64_t *count, int64_t *area,
              char *error, size_t error_size) {
  int64_t capacity = 64, n = 0, covered = 0, previous_end = 0;
  rle_run *list = fp_malloc((size_t)capacity * sizeof *list);
  for (const char *s = text;; n++) {
    int64_t start, length;
    int got_start = read_number(&s, &start);
    if (got_start == 0) break;
    int got_length = got_start < 0 ? -1 : read_number(&s, &length);
    if (got_start < 0 || got_length < 0) {
      snprintf(error, error_size,
               "run %lld: not a 'start length' pair of decimal numbers (at most 15 digits)",
               (long long)n + 1);
      free(list);
      return -1;
    }
    if (got_length == 0) {
      snprintf(error, error_size, "%lld numbers: an odd count, runs are 'start length' pairs",
               (long long)(2 * n + 1));
      free(list);
      return -1;
    }
    const char *problem = start < 1                     ? "start is below 1"
                          : length < 1                  ? "length is below 1"
                          : start - 1 < previous_end    ? "it starts before the previous run ends"
                          : start - 1 + length > pixels ? "it runs past the image end"
                                                        : NULL;
    if (problem) {
      snprintf(error, error_size, "run %lld (start %lld, length %lld): %s (%lld pixels)",
               (long long)n + 1, (long long)start, (long long)length, problem, (long long)pixels);
      free(list);
      return -1;
    }
    if (n == capacity) {
      capacity *= 2;
      list = realloc(list, (size_t)capacity * sizeof *list);
      FP_CHECK(list, "out of memory");
    }
    list[n] = (rle_run){start - 1, length};
    previous_end = start - 1 + length;
    covered += length;
  }
  *runs = list;
  *count = n;
  *area = covered;
  return 0;
}

void rle_paint(const rle_run *runs, int64_t count, int height, int width, uint8_t value,
               uint8_t *mask) {
  for (int64_t r = 0; r < count; r++) {
    int64_t column = runs[r].start / height, row = runs[r].start % height;
    for (int64_t left = runs[r].length; left > 0; left--) {
      mask[row * width + column] = value;
      if (++row == height) {
        row = 0;
        column++;
      }
    }
  }
}
