#include "config.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "check.h"
#include "ini.h"
#include "runtime.h"

#define FIELD(member) INI_FIELD(train_config, member)

/* The schema: adding a key is one entry here plus its field in train_config. */
static const ini_key keys[] = {
    {"data.dataset", INI_STRING, FIELD(dataset), .default_text = "",
     .help = "HDF5 file made by `ingest` (required; relative to the current directory)"},
    {"data.val_dataset", INI_STRING, FIELD(val_dataset), .default_text = "",
     .help = "separate validation HDF5 file; empty = the val split of data.dataset"},
    {"data.limit", INI_INT64, FIELD(limit), "0", 0, INFINITY,
     .help = "use at most N training images, 0 = all"},
    {"data.val_limit", INI_INT64, FIELD(val_limit), "0", 0, INFINITY,
     .help = "use at most N validation images, 0 = all"},
    {"data.augment", INI_BOOL, FIELD(augment), "true", .help = "augment the training images"},
    {"data.class_weights", INI_STRING, FIELD(class_weights), "default",
     .help = "loss weight per class: default (background 1, others 2) or K comma-separated "
             "floats >= 0"},
    {"data.ignore_label", INI_INT, FIELD(ignore_label), "255", 0, 255,
     .help = "mask value left out of the loss and the metrics"},
    {"model.arch", INI_ENUM, FIELD(arch), "r34", .words = "r18|r34",
     .help = "ResNet encoder of the U-Net"},
    {"model.classes", INI_INT, FIELD(classes), "0", 0, 255,
     .help = "number of classes (2..255); 0 = take it from the dataset"},
    {"model.height", INI_INT, FIELD(height), "288", 32, 4096,
     .help = "input height in pixels, a multiple of 32; must match the dataset"},
    {"model.width", INI_INT, FIELD(width), "192", 32, 4096,
     .help = "input width in pixels, a multiple of 32; must match the dataset"},
    {"model.backend", INI_ENUM, FIELD(backend), "auto", .words = RUNTIME_BACKEND_WORDS,
     .help = RUNTIME_BACKEND_HELP},
    {"model.precision", INI_ENUM, FIELD(precision), "auto", .words = RUNTIME_PRECISION_WORDS,
     .help = "fp32, or bf16 mixed precision (bf16 activations and weight copies, f32 master "
             "weights, loss, gradients and optimiser); " RUNTIME_PRECISION_AUTO_HELP},
    {"train.batch", INI_INT, FIELD(batch), "8", 1, 1024, .help = "images per step (per rank)"},
    {"train.epochs", INI_INT, FIELD(epochs), "30", 1, 100000,
     .help = "passes over the training images"},
    {"train.optimizer", INI_ENUM, FIELD(optimizer), "adamw", .words = "adamw|adam",
     .help = "adamw: decoupled weight decay; adam: weight decay added to the gradient"},
    {"train.lr", INI_FLOAT, FIELD(lr), "1e-3", 0, 10, .min_open = 1,
     .help = "peak learning rate of the one-cycle schedule"},
    {"train.warmup", INI_FLOAT, FIELD(warmup), "0.1", 0, 1,
     .help = "fraction of all steps spent warming up to train.lr"},
    {"train.weight_decay", INI_FLOAT, FIELD(weight_decay), "1e-4", 0, 1,
     .help = "weight decay coefficient"},
    {"train.clip_norm", INI_FLOAT, FIELD(clip_norm), "1.0", 0, 1e6,
     .help = "clip the global gradient norm to this, 0 = off"},
    {"train.bn_momentum", INI_FLOAT, FIELD(bn_momentum), "0.1", 0, 1, .min_open = 1,
     .help = "batch-norm running-statistics momentum (PyTorch convention)"},
    {"train.adam_eps", INI_FLOAT, FIELD(adam_eps), "1e-8", 0, 1, .min_open = 1,
     .help = "Adam's epsilon (added to the root of the second moment)"},
    {"train.sync_bn", INI_BOOL, FIELD(sync_bn), "false",
     .help = "batch norm over the global batch of all ranks instead of each rank's own"},
    {"train.bucket_mb", INI_FLOAT, FIELD(bucket_mb), "4", 0, 4096, .min_open = 1,
     .help = "size of each gradient all-reduce started during backward (several ranks)"},
    {"train.seed", INI_UINT64, FIELD(seed), "1", 0, INFINITY,
     .help = "seed for initial weights, shuffling and augmentation"},
    {"train.threads", INI_INT, FIELD(threads), "0", 0, 4096, .help = "CPU threads, 0 = all cores"},
    {"train.log_every", INI_INT, FIELD(log_every), "10", 1, 1000000,
     .help = "print a progress line every N steps"},
    {"checkpoint.dir", INI_STRING, FIELD(checkpoint_dir), "runs/default",
     .help = "directory for last.h5 and best.h5 (created if missing)"},
    {"checkpoint.every", INI_INT, FIELD(checkpoint_every), "1", 1, 100000,
     .help = "epochs between saves of last.h5 (the final epoch is always saved)"},
    {"checkpoint.resume", INI_ENUM, FIELD(resume), "auto", .words = "no|auto",
     .help = "auto: continue from checkpoint.dir/last.h5 if it exists; no: start afresh"},
};
enum { KEY_COUNT = sizeof keys / sizeof keys[0] };

static const ini_schema schema = {"train_config", keys, KEY_COUNT};

void train_config_defaults(train_config *cfg) {
  ini_defaults(&schema, cfg, sizeof *cfg);
}

void train_config_load(train_config *cfg, const char *path, int override_count, char **overrides) {
  ini_load(&schema, cfg, path, override_count, overrides);
}

/* Parses a comma-separated list of weights >= 0; returns the count, or -1 with p filled. */
static int parse_weight_list(const char *text, float *weights, int cap, ini_problem *p) {
  int count = 0;
  const char *s = text;
  for (;;) {
    size_t len = strcspn(s, ",");
    char token[64];
    if (len >= sizeof token) return ini_complain(p, "weight %d is too long", count + 1);
    memcpy(token, s, len);
    token[len] = '\0';
    char *item = ini_trim(token), *end = NULL;
    errno = 0;
    double w = *item ? strtod(item, &end) : NAN;
    if (!*item || *end || errno == ERANGE || !isfinite(w) || w < 0 || w > FLT_MAX)
      return ini_complain(p, "weight %d '%s' is not a number >= 0 (in '%s')", count + 1, item,
                          text);
    if (count == cap) return ini_complain(p, "more than %d weights", cap);
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
    ini_problem p;
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
  ini_problem p;
  int count = parse_weight_list(cfg->class_weights, parsed, 256, &p);
  if (count < 0) FP_FATAL("data.class_weights: %s", p.text);
  if (count != classes)
    FP_FATAL("data.class_weights has %d weights but the model has %d classes", count, classes);
  memcpy(weights, parsed, (size_t)classes * sizeof *weights);
}

size_t train_config_to_ini(const train_config *cfg, char *buf, size_t cap) {
  return ini_to_text(&schema, cfg, buf, cap);
}

void train_config_print_help(FILE *out) {
  ini_print_help(&schema, out);
}
