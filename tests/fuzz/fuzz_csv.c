/* io/ingest/csv.c: every record of the file, then csv_seek back to a record read earlier, which
 * must read the same fields again. */
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "harness_common.h"

#define MAX_FIELDS_KEPT 64

typedef struct kept_record {
  int64_t offset;
  long line;
  int count;
  char *fields[MAX_FIELDS_KEPT];
} kept_record;

static void keep(kept_record *k, const csv_record *r) {
  k->offset = r->offset;
  k->line = r->line;
  k->count = r->count;
  for (int f = 0; f < r->count && f < MAX_FIELDS_KEPT; f++) k->fields[f] = strdup(r->fields[f]);
}

static void forget(kept_record *k) {
  for (int f = 0; f < k->count && f < MAX_FIELDS_KEPT; f++) free(k->fields[f]);
}

static void read_again(csv_reader *reader, const kept_record *k) {
  char error[1024];
  csv_record r;
  fuzz_require(csv_seek(reader, k->offset, k->line, error, sizeof error) == 0, "csv_seek");
  fuzz_require(csv_next(reader, &r, error, sizeof error) == 1, "record read again");
  fuzz_require(r.count == k->count && r.line == k->line, "same field count and line");
  for (int f = 0; f < r.count && f < MAX_FIELDS_KEPT; f++)
    fuzz_require(!strcmp(r.fields[f], k->fields[f]), "same fields");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write_file("input.csv", data, size);
  char error[1024];
  csv_reader *reader = csv_open(path, error, sizeof error);
  fuzz_require(reader != NULL, "csv_open of an existing file");
  kept_record kept = {0};
  csv_record r;
  int status, records = 0;
  while ((status = csv_next(reader, &r, error, sizeof error)) == 1) {
    fuzz_require(r.count >= 1 && r.line >= 1, "record shape");
    /* keep the second record (the first after a header), else the first */
    if (records++ < 2) {
      forget(&kept);
      keep(&kept, &r);
    }
  }
  fuzz_require(status == 0 || error[0], "an error has a message");
  if (records) read_again(reader, &kept);
  forget(&kept);
  csv_close(reader);
  return 0;
}
