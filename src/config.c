#include "config.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "check.h"

typedef enum key_type {
  KEY_INT,
  KEY_INT64,
  KEY_UINT64,
  KEY_FLOAT,
  KEY_BOOL,
  KEY_STRING,
  KEY_ENUM
} key_type;

typedef struct config_key {
  const char *name; /* section.key */
  key_type type;
  size_t offset, size;      /* of the field in train_config */
  const char *default_text; /* parsed exactly like a value in a job file */
  double min, max;          /* numeric keys; max INFINITY = no upper bound */
  int min_open;             /* min itself is not allowed */
  const char *words;        /* KEY_ENUM: the allowed words, '|'-separated */
  const char *help;
} config_key;

#define FIELD(member)                                                                              \
  .offset = offsetof(train_config, member), .size = sizeof(((train_config *)0)->member)

/* The schema: adding a key is one entry here plus its field in train_config. */
static const config_key keys[] = {
    {"data.dataset", KEY_STRING, FIELD(dataset), .default_text = "",
     .help = "HDF5 file made by `ingest` (required; relative to the current directory)"},
    {"data.val_dataset", KEY_STRING, FIELD(val_dataset), .default_text = "",
     .help = "separate validation HDF5 file; empty = the val split of data.dataset"},
    {"data.limit", KEY_INT64, FIELD(limit), "0", 0, INFINITY,
     .help = "use at most N training images, 0 = all"},
    {"data.val_limit", KEY_INT64, FIELD(val_limit), "0", 0, INFINITY,
     .help = "use at most N validation images, 0 = all"},
    {"data.augment", KEY_BOOL, FIELD(augment), "true", .help = "augment the training images"},
    {"data.class_weights", KEY_STRING, FIELD(class_weights), "default",
     .help = "loss weight per class: default (background 1, others 2) or K comma-separated "
             "floats >= 0"},
    {"data.ignore_label", KEY_INT, FIELD(ignore_label), "255", 0, 255,
     .help = "mask value left out of the loss and the metrics"},
    {"model.arch", KEY_ENUM, FIELD(arch), "r34", .words = "r18|r34",
     .help = "ResNet encoder of the U-Net"},
    {"model.classes", KEY_INT, FIELD(classes), "0", 0, 255,
     .help = "number of classes (2..255); 0 = take it from the dataset"},
    {"model.height", KEY_INT, FIELD(height), "288", 32, 4096,
     .help = "input height in pixels, a multiple of 32; must match the dataset"},
    {"model.width", KEY_INT, FIELD(width), "192", 32, 4096,
     .help = "input width in pixels, a multiple of 32; must match the dataset"},
    {"train.batch", KEY_INT, FIELD(batch), "8", 1, 1024, .help = "images per step (per rank)"},
    {"train.epochs", KEY_INT, FIELD(epochs), "30", 1, 100000,
     .help = "passes over the training images"},
    {"train.optimizer", KEY_ENUM, FIELD(optimizer), "adamw", .words = "adamw|adam",
     .help = "adamw: decoupled weight decay; adam: weight decay added to the gradient"},
    {"train.lr", KEY_FLOAT, FIELD(lr), "1e-3", 0, 10, .min_open = 1,
     .help = "peak learning rate of the one-cycle schedule"},
    {"train.warmup", KEY_FLOAT, FIELD(warmup), "0.1", 0, 1,
     .help = "fraction of all steps spent warming up to train.lr"},
    {"train.weight_decay", KEY_FLOAT, FIELD(weight_decay), "1e-4", 0, 1,
     .help = "weight decay coefficient"},
    {"train.clip_norm", KEY_FLOAT, FIELD(clip_norm), "1.0", 0, 1e6,
     .help = "clip the global gradient norm to this, 0 = off"},
    {"train.bn_momentum", KEY_FLOAT, FIELD(bn_momentum), "0.1", 0, 1, .min_open = 1,
     .help = "batch-norm running-statistics momentum (PyTorch convention)"},
    {"train.seed", KEY_UINT64, FIELD(seed), "1", 0, INFINITY,
     .help = "seed for initial weights, shuffling and augmentation"},
    {"train.threads", KEY_INT, FIELD(threads), "0", 0, 4096, .help = "CPU threads, 0 = all cores"},
    {"train.log_every", KEY_INT, FIELD(log_every), "10", 1, 1000000,
     .help = "print a progress line every N steps"},
    {"checkpoint.dir", KEY_STRING, FIELD(checkpoint_dir), "runs/default",
     .help = "directory for last.h5 and best.h5 (created if missing)"},
    {"checkpoint.every", KEY_INT, FIELD(checkpoint_every), "1", 1, 100000,
     .help = "epochs between saves of last.h5 (the final epoch is always saved)"},
    {"checkpoint.resume", KEY_ENUM, FIELD(resume), "auto", .words = "no|auto",
     .help = "auto: continue from checkpoint.dir/last.h5 if it exists; no: start afresh"},
};
enum { KEY_COUNT = sizeof keys / sizeof keys[0] };

/* Error detail for a value, filled in by the parsers and reported with its location. */
typedef struct problem {
  char text[1400];
} problem;

static int complain(problem *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int complain(problem *p, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(p->text, sizeof p->text, fmt, args);
  va_end(args);
  return -1;
}

static const char *type_name(key_type type) {
  switch (type) {
  case KEY_INT:
  case KEY_INT64:
  case KEY_UINT64:
    return "int";
  case KEY_FLOAT:
    return "float";
  case KEY_BOOL:
    return "bool";
  case KEY_STRING:
    return "string";
  case KEY_ENUM:
    return "enum";
  }
  return "?";
}

static size_t section_length(const char *name) {
  return (size_t)(strchr(name, '.') - name);
}

static const config_key *find_key(const char *name) {
  for (int i = 0; i < KEY_COUNT; i++)
    if (!strcmp(keys[i].name, name)) return &keys[i];
  return NULL;
}

static int section_known(const char *section) {
  size_t n = strlen(section);
  for (int i = 0; i < KEY_COUNT; i++)
    if (section_length(keys[i].name) == n && !strncmp(keys[i].name, section, n)) return 1;
  return 0;
}

/* "data, model, ..." in table order, for error messages. */
static void list_sections(char *buf, size_t cap) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < KEY_COUNT; i++) {
    size_t len = section_length(keys[i].name);
    if (i > 0 && len == section_length(keys[i - 1].name) &&
        !strncmp(keys[i].name, keys[i - 1].name, len))
      continue;
    int n = snprintf(buf + used, cap - used, "%s%.*s", used ? ", " : "", (int)len, keys[i].name);
    if (n < 0 || (size_t)n >= cap - used) return;
    used += (size_t)n;
  }
}

static void format_range(const config_key *k, char *buf, size_t cap) {
  switch (k->type) {
  case KEY_BOOL:
    snprintf(buf, cap, "true|false");
    break;
  case KEY_ENUM:
    snprintf(buf, cap, "%s", k->words);
    break;
  case KEY_STRING:
    snprintf(buf, cap, "-");
    break;
  default:
    if (isinf(k->max))
      snprintf(buf, cap, "%c%.15g, inf)", k->min_open ? '(' : '[', k->min);
    else
      snprintf(buf, cap, "%c%.15g, %.15g]", k->min_open ? '(' : '[', k->min, k->max);
  }
}

static int out_of_range(const config_key *k, const char *text, problem *p) {
  char range[64];
  format_range(k, range, sizeof range);
  return complain(p, "%s is out of range %s", text, range);
}

static int check_range(const config_key *k, const char *text, double value, problem *p) {
  if (value < k->min || (k->min_open && value == k->min) || value > k->max)
    return out_of_range(k, text, p);
  return 0;
}

static int word_in_list(const char *word, const char *list) {
  size_t n = strlen(word);
  for (const char *w = list; w; w = strchr(w, '|')) {
    if (*w == '|') w++;
    size_t len = strcspn(w, "|");
    if (len == n && !strncmp(w, word, n)) return 1;
  }
  return 0;
}

/* Whether the string reads back unchanged from `key = value`: values are trimmed, and a '#' or
 * ';' at the start or after whitespace begins a comment. Matters for command-line overrides. */
static int survives_ini(const char *s) {
  size_t n = strlen(s);
  if (n && (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t')) return 0;
  for (size_t i = 0; i < n; i++) {
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 0;
    if ((s[i] == '#' || s[i] == ';') && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t')) return 0;
  }
  return 1;
}

/* Parses text as key k's value and stores it in cfg; leaves cfg alone on error. */
static int set_value(train_config *cfg, const config_key *k, const char *text, problem *p) {
  void *field = (char *)cfg + k->offset;
  char *end = NULL;
  if (!*text && k->type != KEY_STRING) return complain(p, "empty value");
  errno = 0;
  switch (k->type) {
  case KEY_INT:
  case KEY_INT64: {
    long long v = strtoll(text, &end, 10);
    if (*end) return complain(p, "'%s' is not an integer", text);
    if (errno == ERANGE || (k->type == KEY_INT && (v < INT_MIN || v > INT_MAX)))
      return out_of_range(k, text, p);
    if (check_range(k, text, (double)v, p)) return -1;
    if (k->type == KEY_INT)
      *(int *)field = (int)v;
    else
      *(int64_t *)field = v;
    return 0;
  }
  case KEY_UINT64: {
    /* strtoull accepts "-1" and negates it. */
    if (strchr(text, '-')) return complain(p, "'%s' is not an unsigned integer", text);
    unsigned long long v = strtoull(text, &end, 10);
    if (*end) return complain(p, "'%s' is not an unsigned integer", text);
    if (errno == ERANGE) return out_of_range(k, text, p);
    if (check_range(k, text, (double)v, p)) return -1;
    *(uint64_t *)field = v;
    return 0;
  }
  case KEY_FLOAT: {
    double v = strtod(text, &end);
    if (*end) return complain(p, "'%s' is not a number", text);
    if (errno == ERANGE) return out_of_range(k, text, p);
    if (!isfinite(v)) return complain(p, "'%s' is not a finite number", text);
    if (check_range(k, text, v, p)) return -1;
    *(double *)field = v;
    return 0;
  }
  case KEY_BOOL:
    if (word_in_list(text, "true|yes|1"))
      *(int *)field = 1;
    else if (word_in_list(text, "false|no|0"))
      *(int *)field = 0;
    else
      return complain(p, "'%s' is not a bool (true|false|yes|no|1|0)", text);
    return 0;
  case KEY_ENUM:
    if (!word_in_list(text, k->words)) return complain(p, "'%s' is not one of %s", text, k->words);
    break;
  case KEY_STRING:
    if (!survives_ini(text))
      return complain(p,
                      "'%s' cannot be written back to a job file (control character, "
                      "edge whitespace, or '#'/';' at the start or after whitespace)",
                      text);
    break;
  }
  size_t n = strlen(text);
  if (n >= k->size)
    return complain(p, "value is %zu characters long; at most %zu allowed", n, k->size - 1);
  memset(field, 0, k->size);
  memcpy(field, text, n);
  return 0;
}

static void format_value(const train_config *cfg, const config_key *k, char *buf, size_t cap) {
  const void *field = (const char *)cfg + k->offset;
  switch (k->type) {
  case KEY_INT:
    snprintf(buf, cap, "%d", *(const int *)field);
    break;
  case KEY_INT64:
    snprintf(buf, cap, "%lld", (long long)*(const int64_t *)field);
    break;
  case KEY_UINT64:
    snprintf(buf, cap, "%llu", (unsigned long long)*(const uint64_t *)field);
    break;
  case KEY_BOOL:
    snprintf(buf, cap, "%s", *(const int *)field ? "true" : "false");
    break;
  case KEY_STRING:
  case KEY_ENUM:
    snprintf(buf, cap, "%s", (const char *)field);
    break;
  case KEY_FLOAT: {
    /* Shortest text that reads back as the same double. */
    double v = *(const double *)field;
    for (int digits = 1; digits <= 17; digits++) {
      snprintf(buf, cap, "%.*g", digits, v);
      if (strtod(buf, NULL) == v) break;
    }
    break;
  }
  }
}

static size_t storage_size(key_type type) {
  switch (type) {
  case KEY_INT:
  case KEY_BOOL:
    return sizeof(int);
  case KEY_INT64:
    return sizeof(int64_t);
  case KEY_UINT64:
    return sizeof(uint64_t);
  case KEY_FLOAT:
    return sizeof(double);
  case KEY_STRING:
  case KEY_ENUM:
    break;
  }
  return 0;
}

void train_config_defaults(train_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  for (int i = 0; i < KEY_COUNT; i++) {
    const config_key *k = &keys[i];
    size_t expected = storage_size(k->type);
    FP_CHECK(!expected || expected == k->size, "config schema: %s has type %s but a %zu-byte field",
             k->name, type_name(k->type), k->size);
    problem p;
    if (set_value(cfg, k, k->default_text, &p))
      FP_FATAL("config schema: default of %s: %s", k->name, p.text);
  }
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
    s[--n] = '\0';
  return s;
}

static void strip_comment(char *line) {
  for (char *c = line; *c; c++) {
    if ((*c == '#' || *c == ';') && (c == line || c[-1] == ' ' || c[-1] == '\t')) {
      *c = '\0';
      return;
    }
  }
}

static void load_file(train_config *cfg, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) FP_FATAL("cannot open job file %s: %s", path, strerror(errno));
  int first_seen_line[KEY_COUNT] = {0};
  char section[64] = "";
  char *buf = NULL;
  size_t buf_cap = 0;
  int line_no = 0;
  while (getline(&buf, &buf_cap, f) >= 0) {
    line_no++;
    char *line = trim(buf);
    strip_comment(line);
    line = trim(line);
    if (!*line) continue;
    if (*line == '[') {
      size_t n = strlen(line);
      if (line[n - 1] != ']')
        FP_FATAL("%s:%d: malformed section header '%s' (expected [section])", path, line_no, line);
      line[n - 1] = '\0';
      char *name = trim(line + 1);
      if (strlen(name) >= sizeof section || !section_known(name)) {
        char sections[256];
        list_sections(sections, sizeof sections);
        FP_FATAL("%s:%d: unknown section [%s] (sections: %s)", path, line_no, name, sections);
      }
      strcpy(section, name);
      continue;
    }
    char *equals = strchr(line, '=');
    if (!equals) FP_FATAL("%s:%d: malformed line '%s' (expected key = value)", path, line_no, line);
    *equals = '\0';
    char *key = trim(line), *value = trim(equals + 1);
    if (!*key) FP_FATAL("%s:%d: malformed line '= %s' (no key before '=')", path, line_no, value);
    if (!*section) FP_FATAL("%s:%d: key '%s' before any [section]", path, line_no, key);
    char full_name[256];
    snprintf(full_name, sizeof full_name, "%s.%s", section, key);
    const config_key *k = find_key(full_name);
    if (!k) FP_FATAL("%s:%d: unknown key %s (see --help for the keys)", path, line_no, full_name);
    int index = (int)(k - keys);
    if (first_seen_line[index])
      FP_FATAL("%s:%d: %s: duplicate key, already set on line %d", path, line_no, k->name,
               first_seen_line[index]);
    first_seen_line[index] = line_no;
    problem p;
    if (set_value(cfg, k, value, &p)) FP_FATAL("%s:%d: %s: %s", path, line_no, k->name, p.text);
  }
  int read_failed = ferror(f);
  free(buf);
  fclose(f);
  FP_CHECK(!read_failed, "error reading job file %s", path);
}

static void apply_override(train_config *cfg, const char *text) {
  size_t n = strlen(text);
  char *copy = fp_malloc(n + 1);
  memcpy(copy, text, n + 1);
  char *equals = strchr(copy, '=');
  if (!equals) FP_FATAL("command line: malformed override '%s' (expected section.key=value)", text);
  *equals = '\0';
  char *key = trim(copy), *value = trim(equals + 1);
  const config_key *k = find_key(key);
  if (!k)
    FP_FATAL("command line: unknown key %s in override '%s' (see --help for the keys)", key, text);
  problem p;
  if (set_value(cfg, k, value, &p)) FP_FATAL("command line: %s: %s", k->name, p.text);
  free(copy);
}

void train_config_load(train_config *cfg, const char *path, int override_count, char **overrides) {
  load_file(cfg, path);
  for (int i = 0; i < override_count; i++) apply_override(cfg, overrides[i]);
}

/* Parses a comma-separated list of weights >= 0; returns the count, or -1 with p filled. */
static int parse_weight_list(const char *text, float *weights, int cap, problem *p) {
  int count = 0;
  const char *s = text;
  for (;;) {
    size_t len = strcspn(s, ",");
    char token[64];
    if (len >= sizeof token) return complain(p, "weight %d is too long", count + 1);
    memcpy(token, s, len);
    token[len] = '\0';
    char *item = trim(token), *end = NULL;
    errno = 0;
    double w = *item ? strtod(item, &end) : NAN;
    if (!*item || *end || errno == ERANGE || !isfinite(w) || w < 0 || w > FLT_MAX)
      return complain(p, "weight %d '%s' is not a number >= 0 (in '%s')", count + 1, item, text);
    if (count == cap) return complain(p, "more than %d weights", cap);
    weights[count++] = (float)w;
    if (!s[len]) return count;
    s += len + 1;
  }
}

void train_config_validate(const train_config *cfg, const char *origin) {
  FP_CHECK(cfg->dataset[0], "%s: data.dataset is not set (the HDF5 file made by `ingest`)", origin);
  FP_CHECK(cfg->height % 32 == 0, "%s: model.height = %d is not a multiple of 32", origin,
           cfg->height);
  FP_CHECK(cfg->width % 32 == 0, "%s: model.width = %d is not a multiple of 32", origin,
           cfg->width);
  FP_CHECK(cfg->classes != 1,
           "%s: model.classes = 1; give 2..255, or 0 to take it from the dataset", origin);
  if (strcmp(cfg->class_weights, "default") != 0) {
    float weights[256];
    problem p;
    int count = parse_weight_list(cfg->class_weights, weights, 256, &p);
    if (count < 0) FP_FATAL("%s: data.class_weights: %s", origin, p.text);
    if (cfg->classes && count != cfg->classes)
      FP_FATAL("%s: data.class_weights has %d weights but model.classes is %d", origin, count,
               cfg->classes);
  }
}

void train_config_class_weights(const train_config *cfg, int classes, float *weights) {
  FP_CHECK(classes >= 1 && classes <= 255, "data.class_weights: bad class count %d", classes);
  if (!strcmp(cfg->class_weights, "default")) {
    weights[0] = 1.0f;
    for (int c = 1; c < classes; c++) weights[c] = 2.0f;
    return;
  }
  float parsed[256];
  problem p;
  int count = parse_weight_list(cfg->class_weights, parsed, 256, &p);
  if (count < 0) FP_FATAL("data.class_weights: %s", p.text);
  if (count != classes)
    FP_FATAL("data.class_weights has %d weights but the model has %d classes", count, classes);
  memcpy(weights, parsed, (size_t)classes * sizeof *weights);
}

static void append(char *buf, size_t cap, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t cap, size_t *used, const char *fmt, ...) {
  FP_CHECK(*used < cap, "train_config_to_ini: buffer of %zu bytes is too small", cap);
  va_list args;
  va_start(args, fmt);
  int n = vsnprintf(buf + *used, cap - *used, fmt, args);
  va_end(args);
  FP_CHECK(n >= 0 && (size_t)n < cap - *used,
           "train_config_to_ini: buffer of %zu bytes is too small", cap);
  *used += (size_t)n;
}

size_t train_config_to_ini(const train_config *cfg, char *buf, size_t cap) {
  size_t used = 0;
  const char *section = NULL;
  size_t section_len = 0;
  for (int i = 0; i < KEY_COUNT; i++) {
    const config_key *k = &keys[i];
    size_t len = section_length(k->name);
    if (!section || len != section_len || strncmp(k->name, section, len)) {
      append(buf, cap, &used, "%s[%.*s]\n", section ? "\n" : "", (int)len, k->name);
      section = k->name;
      section_len = len;
    }
    char value[1100];
    format_value(cfg, k, value, sizeof value);
    append(buf, cap, &used, "%s =%s%s\n", k->name + len + 1, *value ? " " : "", value);
  }
  return used;
}

void train_config_print_help(FILE *out) {
  fprintf(out, "  %-20s %-6s %-13s %-14s %s\n", "key", "type", "default", "range", "meaning");
  for (int i = 0; i < KEY_COUNT; i++) {
    const config_key *k = &keys[i];
    char range[64], shown_default[64];
    format_range(k, range, sizeof range);
    snprintf(shown_default, sizeof shown_default, "%s",
             *k->default_text ? k->default_text : "\"\"");
    fprintf(out, "  %-20s %-6s %-13s %-14s %s\n", k->name, type_name(k->type), shown_default, range,
            k->help);
  }
}
