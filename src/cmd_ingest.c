/* ingest: turns a source dataset into the HDF5 files train and evaluate read
 * (schema in docs/dataset.md). Under mpirun the items are shared round-robin
 * across ranks; rank 0 writes them in id order, so the file does not depend on
 * the rank count. */
#include <dirent.h>
#include <errno.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "dataset.h"
#include "jpeg_io.h"
#include "labelmap.h"
#include "mat_io.h"
#include "resize.h"

#define INGEST_TOOL_VERSION "fashion_parse ingest 1.0"
#define ID_LIMIT (DATASET_ID_LENGTH - 1)

typedef struct ingest_options {
  const char *source, *root, *out, *labels;
  long height, width, limit;
  unsigned long long seed;
  double val_fraction, test_fraction;
  int skip_bad;
} ingest_options;

static void usage(FILE *out) {
  fprintf(out, "usage: ingest ccp --root DIR --out FILE.h5 [options]\n"
               "  Reads the Clothing Co-Parsing layout under DIR (photos/NNNN.jpg,\n"
               "  annotations/pixel-level/NNNN.mat, annotations/image-level/NNNN.mat,\n"
               "  label_list.mat). Annotated photos go to FILE.h5, tag-only photos to\n"
               "  FILE_tags.h5 (no /masks). Schema: docs/dataset.md.\n"
               "options:\n"
               "  --height H           image height, a multiple of 32 (default 288)\n"
               "  --width W            image width, a multiple of 32 (default 192)\n"
               "  --labels MAP         label map: a name in jobs/labelmaps (ccp59, ccp4,\n"
               "                       ccp_garment) or a path to a .map file (default ccp59)\n"
               "  --limit N            take at most the first N annotated and the first N\n"
               "                       tag-only photos, in id order (default 0 = all)\n"
               "  --seed S             seed of the train/val/test split (default 1)\n"
               "  --val-fraction F     share of the validation split (default 0.1)\n"
               "  --test-fraction F    share of the test split (default 0.1)\n"
               "  --skip-bad           record unreadable or inconsistent items in /skipped\n"
               "                       and go on, instead of stopping with an error\n"
               "  --help               this text\n"
               "Run under mpirun to share the decoding across ranks; the output is the same.\n");
}

static _Noreturn void usage_error(const char *fmt, const char *a, const char *b) {
  fprintf(stderr, "error: ");
  fprintf(stderr, fmt, a, b);
  fprintf(stderr, "\n");
  usage(stderr);
  exit(2);
}

static long parse_long(const char *flag, const char *text, long min, long max) {
  char *end;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (errno || end == text || *end) usage_error("option %s: '%s' is not an integer", flag, text);
  if (value < min || value > max) usage_error("option %s: %s is out of range", flag, text);
  return value;
}

static double parse_fraction(const char *flag, const char *text) {
  char *end;
  errno = 0;
  double value = strtod(text, &end);
  if (errno || end == text || *end) usage_error("option %s: '%s' is not a number", flag, text);
  if (!(value >= 0 && value < 1)) usage_error("option %s: %s is not in [0, 1)", flag, text);
  return value;
}

static void parse_options(int argc, char **argv, ingest_options *o) {
  *o = (ingest_options){NULL, NULL, NULL, "ccp59", 288, 192, 0, 1, 0.1, 0.1, 0};
  if (argc >= 2 && !strcmp(argv[1], "--help")) {
    usage(stdout);
    exit(0);
  }
  if (argc < 2 || argv[1][0] == '-') usage_error("the first argument names the source%s%s", "", "");
  o->source = argv[1];
  if (strcmp(o->source, "ccp")) usage_error("unknown source '%s' (known: ccp)%s", o->source, "");
  for (int i = 2; i < argc; i++) {
    const char *flag = argv[i];
    if (!strcmp(flag, "--help")) {
      usage(stdout);
      exit(0);
    }
    if (!strcmp(flag, "--skip-bad")) {
      o->skip_bad = 1;
      continue;
    }
    const char *known[] = {"--root",  "--out",          "--labels",        "--height", "--width",
                           "--limit", "--val-fraction", "--test-fraction", "--seed"};
    size_t k = 0;
    while (k < sizeof known / sizeof known[0] && strcmp(flag, known[k])) k++;
    if (k == sizeof known / sizeof known[0]) usage_error("unknown option '%s'%s", flag, "");
    if (i + 1 >= argc) usage_error("option %s needs a value%s", flag, "");
    const char *value = argv[++i];
    switch (k) {
    case 0:
      o->root = value;
      break;
    case 1:
      o->out = value;
      break;
    case 2:
      o->labels = value;
      break;
    case 3:
      o->height = parse_long(flag, value, 32, 8192);
      break;
    case 4:
      o->width = parse_long(flag, value, 32, 8192);
      break;
    case 5:
      o->limit = parse_long(flag, value, 0, 1L << 40);
      break;
    case 6:
      o->val_fraction = parse_fraction(flag, value);
      break;
    case 7:
      o->test_fraction = parse_fraction(flag, value);
      break;
    case 8:
      o->seed = (unsigned long long)parse_long(flag, value, 0, 0x7fffffffffffffffL);
      break;
    }
  }
  if (!o->root || !o->out) usage_error("--root and --out are required%s%s", "", "");
  if (o->height % 32 || o->width % 32)
    usage_error("--height and --width must be multiples of 32 (the U-Net downsamples 5 "
                "times)%s%s",
                "", "");
  if (o->val_fraction + o->test_fraction >= 1)
    usage_error("--val-fraction plus --test-fraction must stay below 1%s%s", "", "");
}

/* ---- the CCP layout ---- */

typedef struct id_list {
  char (*ids)[DATASET_ID_LENGTH];
  int64_t count;
} id_list;

static int compare_ids(const void *a, const void *b) {
  return strcmp(a, b);
}

/* Ids of the files NAME<suffix> in `dir`, sorted; an absent directory gives none. */
static id_list list_ids(const char *dir, const char *suffix, long limit) {
  id_list list = {NULL, 0};
  DIR *d = opendir(dir);
  if (!d) {
    FP_CHECK(errno == ENOENT, "%s: cannot list: %s", dir, strerror(errno));
    return list;
  }
  int64_t capacity = 0;
  size_t suffix_length = strlen(suffix);
  for (struct dirent *entry; (entry = readdir(d));) {
    size_t length = strlen(entry->d_name);
    if (entry->d_name[0] == '.' || length <= suffix_length ||
        strcmp(entry->d_name + length - suffix_length, suffix))
      continue;
    FP_CHECK(length - suffix_length <= ID_LIMIT, "%s/%s: name longer than %d characters", dir,
             entry->d_name, ID_LIMIT);
    if (list.count == capacity) {
      capacity = capacity ? 2 * capacity : 1024;
      list.ids = realloc(list.ids, (size_t)capacity * sizeof *list.ids);
      FP_CHECK(list.ids, "out of memory");
    }
    memcpy(list.ids[list.count], entry->d_name, length - suffix_length);
    list.ids[list.count++][length - suffix_length] = '\0';
  }
  closedir(d);
  qsort(list.ids, (size_t)list.count, sizeof *list.ids, compare_ids);
  if (limit > 0 && list.count > limit) list.count = limit;
  return list;
}

typedef enum item_kind { ITEM_ANNOTATED, ITEM_TAGS_ONLY } item_kind;

typedef struct ingest_context {
  const ingest_options *options;
  labelmap map;
  int rank, ranks;
} ingest_context;

/* One processed item as it travels between ranks: header, then the image
 * [H,W,3], the mask [H,W] and the tags [K]. */
typedef struct item_header {
  int32_t ok, source_height, source_width;
  letterbox box;
  char reason[DATASET_REASON_LENGTH];
} item_header;

typedef struct item_buffer {
  unsigned char *bytes;
  size_t size;
  item_header *header;
  uint8_t *image, *mask, *tags;
} item_buffer;

static item_buffer item_buffer_create(const ingest_context *c) {
  size_t pixels = (size_t)c->options->height * (size_t)c->options->width;
  item_buffer b;
  b.size = sizeof(item_header) + pixels * 4 + (size_t)c->map.num_classes;
  b.bytes = fp_calloc(1, b.size);
  b.header = (item_header *)b.bytes;
  b.image = b.bytes + sizeof(item_header);
  b.mask = b.image + pixels * 3;
  b.tags = b.mask + pixels;
  return b;
}

/* Records why the item is bad (long paths are cut to the reason's length). */
static int item_failed(item_buffer *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int item_failed(item_buffer *b, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(b->header->reason, sizeof b->header->reason, fmt, args);
  va_end(args);
  b->header->ok = 0;
  return -1;
}

static int read_mask(const ingest_context *c, const char *id, const letterbox *box, int photo_h,
                     int photo_w, const char *photo_path, item_buffer *b) {
  char path[4096];
  snprintf(path, sizeof path, "%s/annotations/pixel-level/%s.mat", c->options->root, id);
  uint8_t *labels;
  int rows, cols;
  if (mat_read_uint8_matrix(path, "groundtruth", &labels, &rows, &cols, b->header->reason,
                            sizeof b->header->reason))
    return -1;
  if (rows != photo_h || cols != photo_w) {
    free(labels);
    return item_failed(b, "%s: groundtruth is %dx%d but the photo %s is %dx%d", path, rows, cols,
                       photo_path, photo_h, photo_w);
  }
  int unknown;
  if (labelmap_apply(&c->map, labels, (size_t)rows * cols, &unknown)) {
    free(labels);
    return item_failed(b, "%s: class id %d is not in label map %s", path, unknown, c->map.path);
  }
  /* Tags from the full-resolution mask: presence in the photo, however small. */
  for (size_t p = 0; p < (size_t)rows * cols; p++)
    if (labels[p] != LABELMAP_IGNORE) b->tags[labels[p]] = 1;
  resize_mask(labels, rows, cols, box, b->mask, (int)c->options->height, (int)c->options->width);
  free(labels);
  return 0;
}

static int read_tags(const ingest_context *c, const char *id, item_buffer *b) {
  char path[4096];
  snprintf(path, sizeof path, "%s/annotations/image-level/%s.mat", c->options->root, id);
  uint8_t *labels;
  int rows, cols;
  if (mat_read_uint8_matrix(path, "tags", &labels, &rows, &cols, b->header->reason,
                            sizeof b->header->reason))
    return -1;
  int unknown;
  if (labelmap_apply(&c->map, labels, (size_t)rows * cols, &unknown)) {
    free(labels);
    return item_failed(b, "%s: class id %d is not in label map %s", path, unknown, c->map.path);
  }
  for (int i = 0; i < rows * cols; i++)
    if (labels[i] != LABELMAP_IGNORE) b->tags[labels[i]] = 1;
  free(labels);
  return 0;
}

static void process_item(const ingest_context *c, item_kind kind, const char *id, item_buffer *b) {
  memset(b->bytes, 0, b->size);
  char photo_path[4096];
  snprintf(photo_path, sizeof photo_path, "%s/photos/%s.jpg", c->options->root, id);
  uint8_t *photo;
  int photo_h, photo_w;
  if (jpeg_read_rgb(photo_path, &photo, &photo_h, &photo_w, b->header->reason,
                    sizeof b->header->reason))
    return;
  int height = (int)c->options->height, width = (int)c->options->width;
  letterbox box = letterbox_fit(photo_h, photo_w, height, width);
  int status = kind == ITEM_ANNOTATED ? read_mask(c, id, &box, photo_h, photo_w, photo_path, b)
                                      : read_tags(c, id, b);
  if (status == 0) {
    resize_photo(photo, photo_h, photo_w, &box, b->image, height, width);
    b->header->ok = 1;
    b->header->source_height = photo_h;
    b->header->source_width = photo_w;
    b->header->box = box;
  }
  free(photo);
}

/* ---- progress and the write loop (rank 0) ---- */

static double seconds_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void print_progress(const char *what, int64_t done, int64_t total, double start) {
  double elapsed = seconds_now() - start, rate = elapsed > 0 ? done / elapsed : 0;
  long eta = rate > 0 ? (long)((total - done) / rate) : 0;
  fprintf(stderr, "[ingest] %s %lld/%lld img, %.1f img/s, ETA %ld:%02ld:%02ld\n", what,
          (long long)done, (long long)total, rate, eta / 3600, eta / 60 % 60, eta % 60);
}

static void write_set(const ingest_context *c, item_kind kind, const id_list *ids, const char *path,
                      item_buffer *b) {
  const ingest_options *o = c->options;
  const char *what = kind == ITEM_ANNOTATED ? "annotated" : "tag-only";
  dataset_info info = {(int)o->height,
                       (int)o->width,
                       c->map.num_classes,
                       c->map.class_names,
                       c->map.name,
                       o->source,
                       INGEST_TOOL_VERSION,
                       kind == ITEM_ANNOTATED,
                       dataset_default_image_compression()};
  dataset_writer *writer = dataset_create(path, &info);
  double start = seconds_now(), last_print = start;
  int64_t skipped = 0;
  for (int64_t i = 0; i < ids->count; i++) {
    int owner = (int)(i % c->ranks);
    if (owner == 0)
      process_item(c, kind, ids->ids[i], b);
    else
      FP_CHECK(MPI_Recv(b->bytes, (int)b->size, MPI_BYTE, owner, kind, MPI_COMM_WORLD,
                        MPI_STATUS_IGNORE) == MPI_SUCCESS,
               "MPI_Recv of item %s from rank %d failed", ids->ids[i], owner);
    if (b->header->ok) {
      dataset_item item = {ids->ids[i],
                           b->image,
                           b->mask,
                           b->tags,
                           b->header->source_height,
                           b->header->source_width,
                           b->header->box};
      dataset_append(writer, &item);
    } else if (o->skip_bad) {
      fprintf(stderr, "warning: skipping %s: %s\n", ids->ids[i], b->header->reason);
      dataset_add_skipped(writer, ids->ids[i], b->header->reason);
      skipped++;
    } else {
      FP_FATAL("%s (use --skip-bad to leave such items out)", b->header->reason);
    }
    if (seconds_now() - last_print > 5 || i + 1 == ids->count) {
      print_progress(what, i + 1, ids->count, start);
      last_print = seconds_now();
    }
  }
  FP_CHECK(dataset_written(writer) > 0, "%s: every one of the %lld %s items was bad", path,
           (long long)ids->count, what);
  int64_t counts[3];
  dataset_split_options split = {o->val_fraction, o->test_fraction, o->seed};
  dataset_commit(writer, &split, counts);
  printf("ingest %s: %lld %s images -> %s (train %lld, val %lld, test %lld), %lld skipped\n",
         o->source, (long long)(counts[0] + counts[1] + counts[2]), what, path,
         (long long)counts[0], (long long)counts[1], (long long)counts[2], (long long)skipped);
}

/* Ranks other than 0 process their share and send it to rank 0 in order. */
static void send_share(const ingest_context *c, item_kind kind, const id_list *ids,
                       item_buffer *b) {
  for (int64_t i = c->rank; i < ids->count; i += c->ranks) {
    process_item(c, kind, ids->ids[i], b);
    FP_CHECK(MPI_Send(b->bytes, (int)b->size, MPI_BYTE, 0, kind, MPI_COMM_WORLD) == MPI_SUCCESS,
             "MPI_Send of item %s failed", ids->ids[i]);
  }
}

static void ingest_set(const ingest_context *c, item_kind kind, const id_list *ids,
                       const char *path) {
  if (ids->count == 0) return;
  item_buffer b = item_buffer_create(c);
  if (c->rank == 0)
    write_set(c, kind, ids, path, &b);
  else
    send_share(c, kind, ids, &b);
  free(b.bytes);
}

/* FILE.h5 -> FILE_tags.h5 (FILE -> FILE_tags without the .h5). */
static void tags_path(const char *out, char *path, size_t size) {
  size_t length = strlen(out);
  int has_h5 = length > 3 && !strcmp(out + length - 3, ".h5");
  FP_CHECK(length + 6 < size, "%s: path too long", out);
  snprintf(path, size, "%.*s_tags%s", (int)(has_h5 ? length - 3 : length), out,
           has_h5 ? ".h5" : "");
}

static void load_label_map(ingest_context *c) {
  char path[4096], error[1024];
  snprintf(path, sizeof path, "%s/label_list.mat", c->options->root);
  char **source_names;
  int source_count;
  FP_CHECK(
      !mat_read_string_cell(path, "label_list", &source_names, &source_count, error, sizeof error),
      "%s", error);
  labelmap_load(&c->map, c->options->labels, source_names, source_count);
  mat_free_strings(source_names, source_count);
}

int main(int argc, char **argv) {
  ingest_options options;
  parse_options(argc, argv, &options);
  FP_CHECK(MPI_Init(&argc, &argv) == MPI_SUCCESS, "MPI_Init failed");
  ingest_context c = {.options = &options, .ranks = 1};
  MPI_Comm_rank(MPI_COMM_WORLD, &c.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &c.ranks);
  char photos[4096], pixel_level[4096], image_level[4096], tags_out[4096];
  snprintf(photos, sizeof photos, "%s/photos", options.root);
  DIR *photo_dir = opendir(photos);
  FP_CHECK(photo_dir, "%s: cannot open: %s (is --root a CCP directory?)", photos, strerror(errno));
  closedir(photo_dir);
  load_label_map(&c);
  snprintf(pixel_level, sizeof pixel_level, "%s/annotations/pixel-level", options.root);
  snprintf(image_level, sizeof image_level, "%s/annotations/image-level", options.root);
  id_list annotated = list_ids(pixel_level, ".mat", options.limit);
  id_list tagged = list_ids(image_level, ".mat", options.limit);
  FP_CHECK(annotated.count + tagged.count > 0, "%s: no .mat files under %s or %s", options.root,
           pixel_level, image_level);
  tags_path(options.out, tags_out, sizeof tags_out);
  if (c.rank == 0)
    fprintf(stderr,
            "[ingest] %s: %lld annotated, %lld tag-only photos, %ldx%ld, label map %s "
            "(%d classes), %d rank%s\n",
            options.root, (long long)annotated.count, (long long)tagged.count, options.height,
            options.width, c.map.name, c.map.num_classes, c.ranks, c.ranks > 1 ? "s" : "");
  ingest_set(&c, ITEM_ANNOTATED, &annotated, options.out);
  ingest_set(&c, ITEM_TAGS_ONLY, &tagged, tags_out);
  free(annotated.ids);
  free(tagged.ids);
  labelmap_free(&c.map);
  MPI_Finalize();
  return 0;
}
