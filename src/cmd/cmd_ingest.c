/* ingest: turns a source dataset into the HDF5 files train and evaluate read
 * (schema in docs/dataset.md). The sources themselves live in io/ingest_*.c
 * behind io/ingest/ingest_source.h; this file shares their items across MPI ranks
 * (round-robin), and rank 0 writes them in id order, so the file does not
 * depend on the rank count. */
#include <errno.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "dataset.h"
#include "durable.h"
#include "ingest_source.h"
#include "output_lock.h"

#define INGEST_TOOL_VERSION "fashion_parse ingest 1.0"

static const ingest_source_type *const source_types[] = {&ingest_ccp, &ingest_imaterialist,
                                                         &ingest_deepfashion2};
#define SOURCE_TYPE_COUNT (int)(sizeof source_types / sizeof source_types[0])

typedef struct ingest_options {
  const ingest_source_type *source;
  const char *root, *out, *labels;
  long height, width, limit;
  unsigned long long seed;
  double val_fraction, test_fraction;
  int skip_bad;
} ingest_options;

static void usage(FILE *out) {
  fprintf(out, "usage: ingest ccp|imaterialist|deepfashion2 --root DIR --out FILE.h5 [options]\n"
               "  Converts the source under DIR into FILE.h5. Schema and the rules for\n"
               "  masks, overlaps and label maps: docs/dataset.md. Sources:\n");
  for (int t = 0; t < SOURCE_TYPE_COUNT; t++) fputs(source_types[t]->layout, out);
  fprintf(out, "options:\n"
               "  --height H           image height, a multiple of 32 (default 288)\n"
               "  --width W            image width, a multiple of 32 (default 192)\n"
               "  --labels MAP         label map: a name in jobs/labelmaps or a path to a .map\n"
               "                       file (defaults: ccp59, imaterialist46, deepfashion2_13)\n"
               "  --limit N            take at most the first N items of each kind (CCP:\n"
               "                       annotated and tag-only), in id order (default 0 = all)\n"
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
  *o = (ingest_options){NULL, NULL, NULL, NULL, 288, 192, 0, 1, 0.1, 0.1, 0};
  if (argc >= 2 && !strcmp(argv[1], "--help")) {
    usage(stdout);
    exit(0);
  }
  if (argc < 2 || argv[1][0] == '-') usage_error("the first argument names the source%s%s", "", "");
  for (int t = 0; t < SOURCE_TYPE_COUNT; t++)
    if (!strcmp(argv[1], source_types[t]->name)) o->source = source_types[t];
  if (!o->source)
    usage_error("unknown source '%s' (known: ccp, imaterialist, deepfashion2)%s", argv[1], "");
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
  if (!o->labels) o->labels = o->source->default_labels;
  if (o->height % 32 || o->width % 32)
    usage_error("--height and --width must be multiples of 32 (the U-Net downsamples 5 "
                "times)%s%s",
                "", "");
  if (o->val_fraction + o->test_fraction >= 1)
    usage_error("--val-fraction plus --test-fraction must stay below 1%s%s", "", "");
}

/* ---- progress and the write loop (rank 0) ---- */

typedef struct ingest_run {
  const ingest_options *options;
  ingest_source source;
  int rank, ranks;
} ingest_run;

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

/* Item i of set `set` from its rank: processed here (rank 0) or received. */
static void obtain_item(const ingest_run *r, int set, int64_t i, ingest_buffer *b) {
  int owner = (int)(i % r->ranks);
  if (owner == 0) {
    ingest_buffer_reset(b);
    r->source.type->process(&r->source, set, i, b);
    return;
  }
  MPI_Status status;
  int size;
  const char *id = r->source.sets[set].ids[i];
  FP_CHECK(MPI_Probe(owner, set, MPI_COMM_WORLD, &status) == MPI_SUCCESS &&
               MPI_Get_count(&status, MPI_BYTE, &size) == MPI_SUCCESS,
           "MPI_Probe for item %s from rank %d failed", id, owner);
  ingest_buffer_receive_size(b, (size_t)size);
  FP_CHECK(MPI_Recv(b->bytes, size, MPI_BYTE, owner, set, MPI_COMM_WORLD, MPI_STATUS_IGNORE) ==
               MPI_SUCCESS,
           "MPI_Recv of item %s from rank %d failed", id, owner);
  ingest_buffer_attach(b);
}

static void write_set(const ingest_run *r, int set, const char *path, ingest_buffer *b) {
  const ingest_options *o = r->options;
  const ingest_set *items = &r->source.sets[set];
  dataset_info info = {.height = (int)o->height,
                       .width = (int)o->width,
                       .num_classes = r->source.map.num_classes,
                       .class_names = r->source.map.class_names,
                       .label_map = r->source.map.name,
                       .source = o->source->name,
                       .tool_version = INGEST_TOOL_VERSION,
                       .has_masks = items->has_masks,
                       .image_compression = dataset_default_image_compression(),
                       .has_garments = items->has_garments,
                       .has_instances = items->has_instances};
  dataset_writer *writer = dataset_create(path, &info);
  double start = seconds_now(), last_print = start;
  int64_t skipped = 0, excluded = 0;
  for (int64_t i = 0; i < items->count; i++) {
    const char *id = items->ids[i];
    obtain_item(r, set, i, b);
    const ingest_header *h = b->header;
    if (h->status == INGEST_OK) {
      dataset_item item = {.id = id,
                           .image = b->image,
                           .mask = b->mask,
                           .tags = b->tags,
                           .source_height = h->source_height,
                           .source_width = h->source_width,
                           .box = h->box,
                           .garments = b->garments,
                           .garment_count = h->garment_count,
                           .pair_id = h->pair_id,
                           .photo_source = h->photo_source,
                           .instances = b->instances,
                           .instance_count = h->instance_count,
                           .attribute_ids = b->attribute_ids};
      dataset_append(writer, &item);
    } else if (h->status == INGEST_EXCLUDED) {
      excluded++;
    } else if (o->skip_bad) {
      fprintf(stderr, "warning: skipping %s: %s\n", id, h->reason);
      dataset_add_skipped(writer, id, h->reason);
      skipped++;
    } else {
      FP_FATAL("%s (use --skip-bad to leave such items out)", h->reason);
    }
    if (seconds_now() - last_print > 5 || i + 1 == items->count) {
      print_progress(items->kind, i + 1, items->count, start);
      last_print = seconds_now();
    }
  }
  FP_CHECK(dataset_written(writer) > 0,
           "%s: none of the %lld %s items was written (%lld bad, %lld excluded)", path,
           (long long)items->count, items->kind, (long long)skipped, (long long)excluded);
  int64_t counts[3];
  dataset_split_options split = {o->val_fraction, o->test_fraction, o->seed};
  dataset_finish(writer, &split, counts); /* published with the other sets, all or none */
  printf("ingest %s: %lld %s images -> %s (train %lld, val %lld, test %lld), %lld skipped, "
         "%lld excluded\n",
         o->source->name, (long long)(counts[0] + counts[1] + counts[2]), items->kind, path,
         (long long)counts[0], (long long)counts[1], (long long)counts[2], (long long)skipped,
         (long long)excluded);
}

/* Ranks other than 0 process their share and send it to rank 0 in order. */
static void send_share(const ingest_run *r, int set, ingest_buffer *b) {
  const ingest_set *items = &r->source.sets[set];
  for (int64_t i = r->rank; i < items->count; i += r->ranks) {
    ingest_buffer_reset(b);
    r->source.type->process(&r->source, set, i, b);
    FP_CHECK(MPI_Send(b->bytes, (int)b->size, MPI_BYTE, 0, set, MPI_COMM_WORLD) == MPI_SUCCESS,
             "MPI_Send of item %s failed", items->ids[i]);
  }
}

/* FILE.h5 -> FILE<suffix>.h5 (FILE -> FILE<suffix> without the .h5). */
static void set_path(const char *out, const char *suffix, char *path, size_t size) {
  size_t length = strlen(out);
  int has_h5 = length > 3 && !strcmp(out + length - 3, ".h5");
  int written = snprintf(path, size, "%.*s%s%s", (int)(has_h5 ? length - 3 : length), out, suffix,
                         has_h5 ? ".h5" : "");
  FP_CHECK(written >= 0 && (size_t)written < size, "%s: path too long", out);
}

/* Rank 0: OUT.lock held for the run, and the temporaries of runs killed before their rename
 * (every set's FILE.h5.tmp.<pid>) removed under it. Returns the lock. */
static int lock_output(const ingest_run *r) {
  char lock_path[4200], what[4200], path[4096], directory[4096];
  set_path(r->options->out, "", path, sizeof path);
  snprintf(lock_path, sizeof lock_path, "%s.lock", path);
  snprintf(what, sizeof what, "the output %s", path);
  int lock = output_lock_take(lock_path, what, "ingest");
  enum { SETS_MAX = 8 };
  static char prefixes[SETS_MAX][4200];
  const char *stale[SETS_MAX];
  int count = 0;
  FP_CHECK(r->source.set_count <= SETS_MAX, "ingest: %d output sets", r->source.set_count);
  for (int set = 0; set < r->source.set_count; set++, count++) {
    set_path(r->options->out, r->source.sets[set].suffix, path, sizeof path);
    const char *slash = strrchr(path, '/');
    snprintf(prefixes[count], sizeof prefixes[count], "%s.tmp.", slash ? slash + 1 : path);
    stale[count] = prefixes[count];
  }
  path_directory(path, directory, sizeof directory);
  output_lock_remove_stale(directory, stale, count, "ingest");
  return lock;
}

int main(int argc, char **argv) {
  ingest_options options;
  parse_options(argc, argv, &options);
  FP_CHECK(MPI_Init(&argc, &argv) == MPI_SUCCESS, "MPI_Init failed");
  ingest_run r = {.options = &options, .ranks = 1};
  MPI_Comm_rank(MPI_COMM_WORLD, &r.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &r.ranks);
  r.source = (ingest_source){.type = options.source, .root = options.root};
  options.source->open(&r.source, options.labels);
  for (int set = 0; set < r.source.set_count; set++)
    if (options.limit > 0 && r.source.sets[set].count > options.limit)
      r.source.sets[set].count = options.limit;
  if (r.rank == 0) {
    fprintf(stderr, "[ingest] %s %s:", options.source->name, options.root);
    for (int set = 0; set < r.source.set_count; set++)
      fprintf(stderr, "%s %lld %s", set ? "," : "", (long long)r.source.sets[set].count,
              r.source.sets[set].kind);
    fprintf(stderr, "; %ldx%ld, label map %s (%d classes), %d rank%s\n", options.height,
            options.width, r.source.map.name, r.source.map.num_classes, r.ranks,
            r.ranks > 1 ? "s" : "");
  }
  int lock = r.rank == 0 ? lock_output(&r) : -1;
  ingest_buffer b;
  ingest_buffer_init(&b, (int)options.height, (int)options.width, r.source.map.num_classes);
  for (int set = 0; set < r.source.set_count; set++) {
    if (r.source.sets[set].count == 0) continue;
    char path[4096];
    set_path(options.out, r.source.sets[set].suffix, path, sizeof path);
    if (r.rank == 0)
      write_set(&r, set, path, &b);
    else
      send_share(&r, set, &b);
  }
  if (r.rank == 0) dataset_publish();
  output_lock_release(lock);
  ingest_buffer_free(&b);
  if (options.source->close) options.source->close(&r.source);
  for (int set = 0; set < r.source.set_count; set++) free(r.source.sets[set].ids);
  labelmap_free(&r.source.map);
  MPI_Finalize();
  return 0;
}
