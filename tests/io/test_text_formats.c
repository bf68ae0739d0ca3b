/* The annotation readers of io/: JSON (values, escapes, UTF-8, every syntax
 * error with its line and column), CSV (quoting, line breaks in fields, CRLF,
 * re-reading a record from its offset, a UTF-8 byte order mark before the
 * first record, syntax errors with line and column),
 * RLE (column-major painting, bad runs) and polygon filling (even-odd rule,
 * pixel centres, vertices outside the image).
 * Usage: test_text_formats WORK_DIR */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "csv.h"
#include "json.h"
#include "polygon.h"
#include "rle.h"

static int failures;

#define EXPECT(cond, ...)                                                                          \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                         \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fprintf(stderr, "\n");                                                                       \
      failures++;                                                                                  \
    }                                                                                              \
  } while (0)

static void test_json_values(void) {
  const char *text = "{\n  \"name\": \"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\\\ \\/\",\n"
                     "  \"numbers\": [0, -0, 12, -3.5, 1e3, 2.5E-1],\n"
                     "  \"flags\": [true, false, null],\n  \"empty\": {}, \"none\": [],\n"
                     "  \"raw\": \"\xc3\xa9\"\n}\n";
  char error[512];
  json_value *doc = json_parse_text(text, strlen(text), "values.json", error, sizeof error);
  EXPECT(doc, "valid document rejected: %s", error);
  if (!doc) return;
  const json_value *name = json_member(doc, "name");
  EXPECT(name && name->type == JSON_STRING &&
             !strcmp(name->string, "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\" \\ /"),
         "escapes decoded wrong: '%s'", name ? name->string : "(none)");
  EXPECT(name && name->line == 2 && name->column == 11, "name at %d:%d", name->line, name->column);
  const json_value *numbers = json_member(doc, "numbers");
  double expected[6] = {0, 0, 12, -3.5, 1000, 0.25};
  EXPECT(numbers && numbers->count == 6, "numbers");
  for (int i = 0; numbers && i < 6; i++)
    EXPECT(numbers->items[i].number == expected[i], "number %d is %g", i, numbers->items[i].number);
  long long value;
  EXPECT(json_integer(&numbers->items[2], 0, 100, &value) && value == 12, "json_integer 12");
  EXPECT(!json_integer(&numbers->items[3], -10, 10, &value), "-3.5 taken as an integer");
  EXPECT(!json_integer(&numbers->items[4], 0, 999, &value), "1000 taken in 0..999");
  const json_value *flags = json_member(doc, "flags");
  EXPECT(flags && flags->items[0].type == JSON_TRUE && flags->items[1].type == JSON_FALSE &&
             flags->items[2].type == JSON_NULL,
         "literals");
  EXPECT(json_member(doc, "empty")->count == 0 && json_member(doc, "none")->count == 0, "empty");
  EXPECT(!strcmp(json_member(doc, "raw")->string, "\xc3\xa9"), "raw UTF-8 kept");
  EXPECT(!json_member(doc, "missing") && !json_member(numbers, "x"), "json_member of nothing");
  json_free(doc);
}

static void expect_json_error(const char *text, const char *message) {
  char error[512] = "";
  json_value *doc = json_parse_text(text, strlen(text), "bad.json", error, sizeof error);
  EXPECT(!doc, "accepted: %s", text);
  EXPECT(strstr(error, message), "for %s\n  expected: %s\n  got:      %s", text, message, error);
  json_free(doc);
}

/* An object with many members: repeated keys are found beyond the linear-scan range (the
 * hash-table path that keeps hostile files O(n)), and distinct keys all kept. */
static void test_json_many_members(void) {
  enum { MEMBERS = 100000 };
  size_t cap = (size_t)MEMBERS * 24 + 64, used = 0;
  char *text = fp_malloc(cap);
  used += (size_t)snprintf(text + used, cap - used, "{");
  for (int i = 0; i < MEMBERS; i++)
    used += (size_t)snprintf(text + used, cap - used, "%s\"k%d\": %d", i ? ", " : "", i, i);
  snprintf(text + used, cap - used, "}");
  char error[512] = "";
  json_value *doc = json_parse_text(text, strlen(text), "many.json", error, sizeof error);
  EXPECT(doc && doc->count == MEMBERS, "100000 distinct members: %s", error);
  const json_value *last = doc ? json_member(doc, "k99999") : NULL;
  EXPECT(last && last->number == 99999.0, "member k99999 lost");
  json_free(doc);
  for (int repeated = 3; repeated < MEMBERS; repeated += 49997) { /* early, middle keys */
    snprintf(text + used, cap - used, ", \"k%d\": 0}", repeated);
    char message[64];
    snprintf(message, sizeof message, "member \"k%d\" appears twice", repeated);
    EXPECT(!json_parse_text(text, strlen(text), "many.json", error, sizeof error) &&
               strstr(error, message),
           "repeated k%d among 100000 members: %s", repeated, error);
  }
  free(text);
}

static void test_json_errors(void) {
  expect_json_error("{\"a\": 1,}",
                    "bad.json:1:9: expected a member name in double quotes, found '}'");
  expect_json_error("[1, 2",
                    "bad.json:1:6: expected ',' or ']' in an array, found the end of the file");
  expect_json_error("{\"a\": 1}\n x",
                    "bad.json:2:2: expected the end of the file after the value, found 'x'");
  expect_json_error("[01]", "bad.json:1:2: number with a leading zero");
  expect_json_error("[1.]", "bad.json:1:4: expected a digit after the decimal point, found ']'");
  expect_json_error("[-]", "bad.json:1:3: expected a digit, found ']'");
  expect_json_error("[1e999]", "bad.json:1:2: number 1e999 is out of range");
  expect_json_error("\n\n  \"abc", "bad.json:3:3: string not closed on its line");
  expect_json_error("{\"a\": 1, \"a\": 2}", "bad.json:1:10: member \"a\" appears twice");
  expect_json_error("\"\\x\"", "bad.json:1:2: invalid escape \\x in a string");
  expect_json_error("\"\\ud800\"",
                    "bad.json:1:2: \\ud800 (a high surrogate) is not followed by a low one");
  expect_json_error("\"\\udc00\"", "bad.json:1:2: \\udc00 is a lone low surrogate");
  expect_json_error("\"\\u12g4\"", "bad.json:1:6: expected a hexadecimal digit");
  expect_json_error("\"\\u0000\"", "\\u0000 is not supported");
  expect_json_error("\"a\tb\"", "bad.json:1:3: control character 0x09 in a string");
  expect_json_error("\"\xff\"", "bad.json:1:2: invalid UTF-8 in a string");
  expect_json_error("\"\xc3\"", "bad.json:1:2: invalid UTF-8 in a string");
  expect_json_error("\"\xed\xa0\x80\"", "invalid UTF-8"); /* an encoded surrogate */
  expect_json_error("[tru]", "bad.json:1:2: expected a value, found 't'");
  expect_json_error("{\"a\" 1}", "bad.json:1:6: expected ':' after a member name, found '1'");
  expect_json_error("[1 2]", "bad.json:1:4: expected ',' or ']' in an array, found '2'");
  expect_json_error("// x\n{}", "bad.json:1:1: expected a value, found '/'");
  expect_json_error("", "bad.json:1:1: expected a value, found the end of the file");
  char deep[600];
  memset(deep, '[', 300);
  deep[300] = '\0';
  expect_json_error(deep, "nested deeper than 256 levels");
}

static void write_file(const char *path, const char *text, size_t length) {
  FILE *file = fopen(path, "wb");
  FP_CHECK(file, "%s: cannot create", path);
  FP_CHECK(fwrite(text, 1, length, file) == length, "%s: write failed", path);
  FP_CHECK(fclose(file) == 0, "%s: close failed", path);
}

static void test_json_file(const char *dir) {
  char path[2048], error[512];
  snprintf(path, sizeof path, "%s/text_formats.json", dir);
  write_file(path, "{\"k\": [1,\n 2, oops]}", 20);
  json_value *doc = json_parse_file(path, error, sizeof error);
  char expected[2100];
  snprintf(expected, sizeof expected, "%s:2:5: expected a value, found 'o'", path);
  EXPECT(!doc && !strcmp(error, expected), "file error: %s", error);
  snprintf(path, sizeof path, "%s/no_such.json", dir);
  EXPECT(!json_parse_file(path, error, sizeof error) && strstr(error, "no_such.json: cannot open"),
         "missing file: %s", error);
}

static void test_csv_records(const char *dir) {
  char path[2048], error[512];
  snprintf(path, sizeof path, "%s/text_formats.csv", dir);
  const char *text = "id,text,n\r\n"
                     "a,plain,1\r\n"
                     "\"b\",\"with, comma and \"\"quotes\"\"\",2\n"
                     "c,\"two\nlines\",3\n"
                     ",,\n"
                     "d,last,4"; /* no final line break */
  write_file(path, text, strlen(text));
  csv_reader *r = csv_open(path, error, sizeof error);
  FP_CHECK(r, "%s", error);
  csv_record record;
  const char *expected[6][3] = {
      {"id", "text", "n"},      {"a", "plain", "1"}, {"b", "with, comma and \"quotes\"", "2"},
      {"c", "two\nlines", "3"}, {"", "", ""},        {"d", "last", "4"}};
  long lines[6] = {1, 2, 3, 4, 6, 7};
  int64_t offsets[6];
  for (int i = 0; i < 6; i++) {
    int status = csv_next(r, &record, error, sizeof error);
    EXPECT(status == 1, "record %d: status %d %s", i, status, error);
    if (status != 1) break;
    offsets[i] = record.offset;
    EXPECT(record.count == 3 && record.line == lines[i], "record %d: %d fields at line %ld", i,
           record.count, record.line);
    for (int f = 0; f < 3 && f < record.count; f++)
      EXPECT(!strcmp(record.fields[f], expected[i][f]), "record %d field %d: '%s'", i, f,
             record.fields[f]);
  }
  EXPECT(csv_next(r, &record, error, sizeof error) == 0, "no end of file");
  /* back to the multi-line record, then on to the next one: lines stay right */
  EXPECT(csv_seek(r, offsets[3], lines[3], error, sizeof error) == 0, "seek: %s", error);
  EXPECT(csv_next(r, &record, error, sizeof error) == 1 && !strcmp(record.fields[1], "two\nlines"),
         "re-read record 3");
  EXPECT(csv_next(r, &record, error, sizeof error) == 1 && record.line == 6, "line after re-read");
  EXPECT(csv_seek(r, offsets[1], lines[1], error, sizeof error) == 0 &&
             csv_next(r, &record, error, sizeof error) == 1 && !strcmp(record.fields[0], "a"),
         "re-read record 1");
  csv_close(r);
}

/* A UTF-8 byte order mark (EF BB BF, "\357\273\277") starting the file is
 * not part of the first field (also when the header is read again from its
 * offset); one anywhere else, or an incomplete one, is field text. */
static void test_csv_byte_order_mark(const char *dir) {
  char path[2048], error[512];
  snprintf(path, sizeof path, "%s/text_formats_bom.csv", dir);
  const char *text = "\357\273\277ImageId,n\n\357\273\277a,1\n";
  write_file(path, text, strlen(text));
  csv_reader *r = csv_open(path, error, sizeof error);
  FP_CHECK(r, "%s", error);
  csv_record record;
  for (int pass = 0; pass < 2; pass++) {
    int status = csv_next(r, &record, error, sizeof error);
    EXPECT(status == 1 && record.line == 1 && !strcmp(record.fields[0], "ImageId"),
           "pass %d: header '%s' (status %d %s)", pass, status == 1 ? record.fields[0] : "", status,
           error);
    status = csv_next(r, &record, error, sizeof error);
    EXPECT(status == 1 && record.line == 2 && !strcmp(record.fields[0], "\357\273\277a"),
           "pass %d: a mark on line 2 must stay text", pass);
    EXPECT(csv_seek(r, 0, 1, error, sizeof error) == 0, "seek: %s", error);
  }
  csv_close(r);
  write_file(path, "\357\273x,y\n", 6);
  r = csv_open(path, error, sizeof error);
  FP_CHECK(r, "%s", error);
  EXPECT(csv_next(r, &record, error, sizeof error) == 1 && !strcmp(record.fields[0], "\357\273x"),
         "an incomplete mark is text");
  csv_close(r);
  write_file(path, "\357\273\277", 3);
  r = csv_open(path, error, sizeof error);
  FP_CHECK(r, "%s", error);
  EXPECT(csv_next(r, &record, error, sizeof error) == 0, "a file holding only the mark is empty");
  csv_close(r);
}

static void expect_csv_error(const char *dir, const char *text, size_t length,
                             const char *message) {
  char path[2048], error[512] = "";
  snprintf(path, sizeof path, "%s/bad.csv", dir);
  write_file(path, text, length);
  csv_reader *r = csv_open(path, error, sizeof error);
  FP_CHECK(r, "%s", error);
  csv_record record;
  int status;
  while ((status = csv_next(r, &record, error, sizeof error)) == 1) continue;
  csv_close(r);
  EXPECT(status == -1, "accepted: %s", text);
  EXPECT(strstr(error, message), "for %s\n  expected: %s\n  got:      %s", text, message, error);
}

static void test_csv_errors(const char *dir) {
  const char *cases[][2] = {
      {"a,b\nx,y\"z\n", "bad.csv:2:4: quote inside an unquoted field"},
      {"a,b\n\"x\"y,z\n", "bad.csv:2:4: text after the closing quote of a field"},
      {"a,b\nx,\"open\nmore\n", "the quoted field opened at line 2, column 3 is not closed"},
      {"a,b\nx,y\nz\n", "bad.csv:3: 1 field, the header has 2"},
      {"a,b\nx,y,z\n", "bad.csv:2: 3 fields, the header has 2"},
      {"a,b\nx\r,y\n", "bad.csv:2:3: '\\r' not followed by '\\n'"},
      {"a,b\n\n", "bad.csv:2: 1 field, the header has 2"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
    expect_csv_error(dir, cases[c][0], strlen(cases[c][0]), cases[c][1]);
  expect_csv_error(dir, "a,b\nx,y\0z\n", 10, "bad.csv:2:4: NUL byte in a field");
  /* columns on line 1 count from after a byte order mark */
  const char *marked = "\357\273\277a,b\"c\n";
  expect_csv_error(dir, marked, strlen(marked), "bad.csv:1:4: quote inside an unquoted field");
}

static void test_rle(void) {
  /* 4 rows x 3 columns; column-major pixel p is (p % 4, p / 4). */
  rle_run *runs;
  int64_t count, area;
  char error[256];
  EXPECT(rle_parse(" 2 3  8 2 12 1 ", 12, &runs, &count, &area, error, sizeof error) == 0,
         "valid RLE: %s", error);
  EXPECT(count == 3 && area == 6, "count %lld area %lld", (long long)count, (long long)area);
  uint8_t mask[12] = {0};
  rle_paint(runs, count, 4, 3, 7, mask);
  free(runs);
  /* pixels 1..3 (column 0, rows 1-3), 7..8 (column 1 row 3, column 2 row 0), 11 (column 2 row 3) */
  const uint8_t expected[12] = {0, 0, 7, 7, 0, 0, 7, 0, 0, 7, 7, 7};
  EXPECT(!memcmp(mask, expected, 12), "painted in the wrong places");
  EXPECT(rle_parse("", 12, &runs, &count, &area, error, sizeof error) == 0 && count == 0,
         "empty RLE");
  free(runs);
  const char *bad[][2] = {
      {"1 3 10 4", "run 2 (start 10, length 4): it runs past the image end (12 pixels)"},
      {"1 3 5", "3 numbers: an odd count"},
      {"5 2 3 1", "run 2 (start 3, length 1): it starts before the previous run ends"},
      {"0 2", "run 1 (start 0, length 2): start is below 1"},
      {"1 0", "length is below 1"},
      {"1 2 x 3", "run 2: not a 'start length' pair"},
      {"1 2,3 4", "run 1: not a 'start length' pair"},
      {"1 99999999999999999999", "run 1: not a 'start length' pair"},
  };
  for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
    error[0] = '\0';
    EXPECT(rle_parse(bad[b][0], 12, &runs, &count, &area, error, sizeof error) == -1,
           "accepted '%s'", bad[b][0]);
    EXPECT(strstr(error, bad[b][1]), "'%s': %s", bad[b][0], error);
  }
}

static void expect_mask(const uint8_t *mask, const char *rows[], int h, int w, const char *what) {
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      EXPECT((mask[y * w + x] != 0) == (rows[y][x] == '#'), "%s: pixel (%d, %d)", what, y, x);
}

/* Even-odd by brute force: the crossings of the ray from the centre to the right. */
static int inside_even_odd(const double *xy, int points, double cx, double cy) {
  int inside = 0;
  for (int i = 0, j = points - 1; i < points; j = i++) {
    double x0 = xy[2 * j], y0 = xy[2 * j + 1], x1 = xy[2 * i], y1 = xy[2 * i + 1];
    if ((y0 <= cy) != (y1 <= cy) && cx < x0 + (cy - y0) * (x1 - x0) / (y1 - y0)) inside = !inside;
  }
  return inside;
}

/* A zig-zag of 32 768 points crossing every row thousands of times (the hostile DeepFashion2
 * polygon of the hardening issue: the crossings are now sorted in O(n log n)), against the
 * brute-force rule on every pixel centre. */
static void test_polygon_zigzag(void) {
  enum { POINTS = 32768, H = 16, W = 48 };
  double *xy = fp_malloc(2 * POINTS * sizeof *xy);
  for (int i = 0; i < POINTS; i++) {
    xy[2 * i] = W * (double)i / POINTS + 0.013 * (i % 7);
    xy[2 * i + 1] = i % 2 ? H - 0.3 : 0.2 + 0.001 * (i % 11);
  }
  uint8_t *mask = fp_calloc(H * W, 1);
  polygon_fill(xy, POINTS, H, W, 1, mask);
  int wrong = 0;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      wrong += mask[y * W + x] != inside_even_odd(xy, POINTS, x + 0.5, y + 0.5);
  EXPECT(wrong == 0, "zig-zag polygon: %d of %d pixels differ from the even-odd rule", wrong,
         H * W);
  free(mask);
  free(xy);
}

static void test_polygon(void) {
  enum { H = 6, W = 8 };
  uint8_t mask[H * W];
  /* A square from (1, 1) to (4, 3): centres x 1.5..3.5, y 1.5..2.5. */
  const double square[] = {1, 1, 4, 1, 4, 3, 1, 3};
  memset(mask, 0, sizeof mask);
  EXPECT(polygon_fill(square, 4, H, W, 1, mask) == 6, "square area");
  const char *square_rows[H] = {"........", ".###....", ".###....",
                                "........", "........", "........"};
  expect_mask(mask, square_rows, H, W, "square");
  /* Edges through pixel centres: a centre on the left or top edge is inside,
   * on the right or bottom edge outside. */
  const double on_centres[] = {0.5, 0.5, 2.5, 0.5, 2.5, 2.5, 0.5, 2.5};
  memset(mask, 0, sizeof mask);
  polygon_fill(on_centres, 4, H, W, 1, mask);
  const char *centre_rows[H] = {"##......", "##......", "........",
                                "........", "........", "........"};
  expect_mask(mask, centre_rows, H, W, "edges on centres");
  /* Even-odd: a square drawn twice around (same winding) covers nothing
   * inside; a bow tie covers both lobes. */
  const double twice[] = {0, 0, 4, 0, 4, 4, 0, 4, 0, 0, 4, 0, 4, 4, 0, 4};
  memset(mask, 0, sizeof mask);
  EXPECT(polygon_fill(twice, 8, H, W, 1, mask) == 0, "doubled square is empty under even-odd");
  const double bow_tie[] = {0, 0, 8, 6, 8, 0, 0, 6};
  memset(mask, 0, sizeof mask);
  polygon_fill(bow_tie, 4, H, W, 1, mask);
  const char *bow_rows[H] = {"#......#", "##....##", "###..###",
                             "###..###", "##....##", "#......#"};
  expect_mask(mask, bow_rows, H, W, "bow tie");
  /* Vertices far outside the image: the whole image. */
  const double huge[] = {-1e9, -1e9, 1e9, -1e9, 1e9, 1e9, -1e9, 1e9};
  memset(mask, 0, sizeof mask);
  EXPECT(polygon_fill(huge, 4, H, W, 3, mask) == H * W, "huge polygon");
  const double two_points[] = {0, 0, 5, 5};
  memset(mask, 0, sizeof mask);
  EXPECT(polygon_fill(two_points, 2, H, W, 1, mask) == 0, "two points cover nothing");
  /* A triangle whose crossings are not on pixel boundaries. */
  const double triangle[] = {0.2, 0.3, 7.9, 2.7, 1.1, 5.8};
  memset(mask, 0, sizeof mask);
  polygon_fill(triangle, 3, H, W, 1, mask);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      double cx = x + 0.5, cy = y + 0.5;
      int inside = 0;
      for (int i = 0; i < 3; i++) {
        double x0 = triangle[2 * i], y0 = triangle[2 * i + 1];
        double x1 = triangle[(2 * i + 2) % 6], y1 = triangle[(2 * i + 3) % 6];
        if ((y0 <= cy) != (y1 <= cy) && x0 + (cy - y0) * (x1 - x0) / (y1 - y0) > cx) inside ^= 1;
      }
      EXPECT(mask[y * W + x] == inside, "triangle pixel (%d, %d)", y, x);
    }
}

int main(int argc, char **argv) {
  FP_CHECK(argc == 2, "usage: test_text_formats WORK_DIR");
  test_json_values();
  test_json_errors();
  test_json_many_members();
  test_json_file(argv[1]);
  test_csv_records(argv[1]);
  test_csv_byte_order_mark(argv[1]);
  test_csv_errors(argv[1]);
  test_rle();
  test_polygon();
  test_polygon_zigzag();
  if (failures) {
    fprintf(stderr, "%d failures\n", failures);
    return 1;
  }
  printf("json, csv, rle and polygon readers ok\n");
  return 0;
}
