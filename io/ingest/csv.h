/* A small strict CSV (RFC 4180) reader: fields separated by ',', records by
 * "\n" or "\r\n", fields optionally in double quotes ("" inside stands for
 * one quote; quoted fields may hold ',' and line breaks). A UTF-8 byte order
 * mark at the start of the file is skipped. Every record must
 * have as many fields as the first one (the header). Errors name the file,
 * line and column. Records can be read again later from their offset, so a
 * large file need not be kept in memory. */
#ifndef FP_CSV_H
#define FP_CSV_H

#include <stddef.h>
#include <stdint.h>

typedef struct csv_reader csv_reader;

typedef struct csv_record {
  int count;      /* fields */
  char **fields;  /* [count], NUL-terminated, valid until the next read */
  long line;      /* line on which the record starts, 1-based */
  int64_t offset; /* byte offset of the record's start, for csv_seek */
} csv_record;

/* NULL with a message in `error` when the file cannot be opened. */
csv_reader *csv_open(const char *path, char *error, size_t error_size);
void csv_close(csv_reader *r);
/* Reads the next record: 1 with *record filled, 0 at the end of the file,
 * -1 with "path:line:column: what" in `error` on a syntax error (a quote in
 * an unquoted field, text after a closing quote, an unclosed quote, a NUL
 * byte, a lone '\r', a wrong field count) or a read error. */
int csv_next(csv_reader *r, csv_record *record, char *error, size_t error_size);
/* Continues reading at a record start that csv_next reported earlier. */
int csv_seek(csv_reader *r, int64_t offset, long line, char *error, size_t error_size);

#endif
