#include "csv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define CSV_BUFFER_BYTES (1 << 16)

struct csv_reader {
  char *path;
  FILE *file;
  unsigned char buffer[CSV_BUFFER_BYTES];
  size_t buffered, next; /* bytes in buffer, index of the next one */
  int64_t buffer_offset; /* file offset of buffer[0] */
  long line;
  int64_t line_offset; /* file offset of the current line's first byte */
  int expected_fields; /* the header's field count, 0 before the first record */
  char *text;          /* the record's fields, each NUL-terminated */
  size_t text_length, text_capacity;
  size_t *field_starts;
  char **fields;
  int field_capacity;
};

csv_reader *csv_open(const char *path, char *error, size_t error_size) {
  FILE *file = fopen(path, "rb");
  if (!file) {
    snprintf(error, error_size, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  csv_reader *r = fp_calloc(1, sizeof *r);
  r->path = strdup(path);
  FP_CHECK(r->path, "out of memory");
  r->file = file;
  r->line = 1;
  return r;
}

void csv_close(csv_reader *r) {
  if (!r) return;
  fclose(r->file);
  free(r->path);
  free(r->text);
  free(r->field_starts);
  free(r->fields);
  free(r);
}

static int64_t current_offset(const csv_reader *r) {
  return r->buffer_offset + (int64_t)r->next;
}

static int fail(csv_reader *r, char *error, size_t error_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(csv_reader *r, char *error, size_t error_size, const char *fmt, ...) {
  /* The column of the byte just read. */
  long column = (long)(current_offset(r) - r->line_offset);
  int written =
      snprintf(error, error_size, "%s:%ld:%ld: ", r->path, r->line, column < 1 ? 1 : column);
  if (written >= 0 && (size_t)written < error_size) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(error + written, error_size - (size_t)written, fmt, args);
    va_end(args);
  }
  return -1;
}

/* The next byte, EOF at the end, -2 on a read error. */
static int next_byte(csv_reader *r) {
  if (r->next == r->buffered) {
    r->buffer_offset += (int64_t)r->buffered;
    r->buffered = fread(r->buffer, 1, sizeof r->buffer, r->file);
    r->next = 0;
    if (r->buffered == 0) return ferror(r->file) ? -2 : EOF;
  }
  return r->buffer[r->next++];
}

/* Called after a '\n' was consumed. */
static void start_line(csv_reader *r) {
  r->line++;
  r->line_offset = current_offset(r);
}

static void append_text(csv_reader *r, char c) {
  if (r->text_length + 1 >= r->text_capacity) {
    r->text_capacity = r->text_capacity ? 2 * r->text_capacity : 4096;
    r->text = realloc(r->text, r->text_capacity);
    FP_CHECK(r->text, "%s: out of memory", r->path);
  }
  r->text[r->text_length++] = c;
}

static void start_field(csv_reader *r, int index) {
  if (index == r->field_capacity) {
    r->field_capacity = r->field_capacity ? 2 * r->field_capacity : 16;
    r->field_starts = realloc(r->field_starts, (size_t)r->field_capacity * sizeof *r->field_starts);
    r->fields = realloc(r->fields, (size_t)r->field_capacity * sizeof *r->fields);
    FP_CHECK(r->field_starts && r->fields, "%s: out of memory", r->path);
  }
  r->field_starts[index] = r->text_length;
}

/* Reads a quoted field after its opening quote; *after receives the byte
 * that follows the closing quote (EOF, or -2 on a read error). */
static int read_quoted(csv_reader *r, int *after, char *error, size_t error_size) {
  long open_line = r->line;
  long open_column = (long)(current_offset(r) - r->line_offset);
  for (;;) {
    int c = next_byte(r);
    if (c == -2) return fail(r, error, error_size, "read error");
    if (c == EOF)
      return fail(r, error, error_size,
                  "the quoted field opened at line %ld, column %ld is not closed", open_line,
                  open_column);
    if (c == '\0') return fail(r, error, error_size, "NUL byte in a field");
    if (c == '"') {
      c = next_byte(r);
      if (c != '"') {
        *after = c;
        return 0;
      }
    }
    append_text(r, (char)c);
    if (c == '\n') start_line(r);
  }
}

/* A UTF-8 byte order mark (EF BB BF, as some editors and exporters write)
 * at the start of the file is not part of the first record; columns on line
 * 1 count from after it. Called at offset 0 only. */
static void skip_byte_order_mark(csv_reader *r) {
  if (r->buffered == 0) r->buffered = fread(r->buffer, 1, sizeof r->buffer, r->file);
  if (r->buffered >= 3 && !memcmp(r->buffer, "\xEF\xBB\xBF", 3)) {
    r->next = 3;
    r->line_offset = 3;
  }
}

int csv_next(csv_reader *r, csv_record *record, char *error, size_t error_size) {
  if (current_offset(r) == 0) skip_byte_order_mark(r);
  record->offset = current_offset(r);
  record->line = r->line;
  r->text_length = 0;
  int count = 0;
  int c = next_byte(r);
  if (c == EOF) return 0;
  for (;;) {
    start_field(r, count++);
    if (c == '"') {
      if (read_quoted(r, &c, error, error_size)) return -1;
      if (c != ',' && c != '\n' && c != '\r' && c != EOF && c != -2)
        return fail(r, error, error_size, "text after the closing quote of a field");
    } else {
      for (; c != ',' && c != '\n' && c != '\r' && c != EOF && c != -2; c = next_byte(r)) {
        if (c == '"') return fail(r, error, error_size, "quote inside an unquoted field");
        if (c == '\0') return fail(r, error, error_size, "NUL byte in a field");
        append_text(r, (char)c);
      }
    }
    append_text(r, '\0');
    if (c == -2) return fail(r, error, error_size, "read error");
    if (c == '\r') {
      c = next_byte(r);
      if (c != '\n') return fail(r, error, error_size, "'\\r' not followed by '\\n'");
    }
    if (c == '\n') start_line(r);
    if (c == '\n' || c == EOF) break;
    c = next_byte(r); /* after ',' */
  }
  if (!r->expected_fields) r->expected_fields = count;
  if (count != r->expected_fields) {
    snprintf(error, error_size, "%s:%ld: %d field%s, the header has %d", r->path, record->line,
             count, count == 1 ? "" : "s", r->expected_fields);
    return -1;
  }
  for (int f = 0; f < count; f++) r->fields[f] = r->text + r->field_starts[f];
  record->count = count;
  record->fields = r->fields;
  return 1;
}

int csv_seek(csv_reader *r, int64_t offset, long line, char *error, size_t error_size) {
  if (offset >= r->buffer_offset && offset <= r->buffer_offset + (int64_t)r->buffered) {
    r->next = (size_t)(offset - r->buffer_offset); /* still buffered: no system call */
  } else {
    if (fseeko(r->file, (off_t)offset, SEEK_SET)) {
      snprintf(error, error_size, "%s: cannot seek to byte %lld: %s", r->path, (long long)offset,
               strerror(errno));
      return -1;
    }
    r->buffer_offset = offset;
    r->buffered = r->next = 0;
  }
  r->line = line;
  r->line_offset = offset;
  return 0;
}
