#include "config.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "check.h"
#include "dataset.h"
#include "ini.h"
#include "optim.h"
#include "runtime.h"
#include "unet.h"

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
    {"data.tags_dataset", INI_STRING, FIELD(tags_dataset), .default_text = "",
     .help = "tag-only HDF5 file (ingest's FILE_tags.h5): its train split joins training with "
             "image-level tags as the class branch's targets and no pixel or box loss (needs "
             "model.branches)"},
    {"data.tags_limit", INI_INT64, FIELD(tags_limit), "0", 0, INFINITY,
     .help = "use at most N images of data.tags_dataset, 0 = all"},
    {"data.augment", INI_BOOL, FIELD(augment), "true",
     .help = "augment the training images as the [augment] keys say; false = none at all"},
    {"data.class_weights", INI_STRING, FIELD(class_weights), "default",
     .help = "loss weight per class: default (background 1, others 2) or K comma-separated "
             "floats >= 0"},
    {"data.ignore_label", INI_INT, FIELD(ignore_label), "255", 0, 255,
     .help = "mask value left out of the loss and the metrics"},
    {"model.arch", INI_ENUM, FIELD(arch), "r34", .words = UNET_ARCH_WORDS,
     .help = "encoder of the U-Net: ResNet18/34, VGG16/19 without or with (_bn) batch norm"},
    {"model.branches", INI_ENUM, FIELD(branches), "none", .words = BRANCH_MODE_WORDS,
     .help = "the Extended U-Net's class-presence and box branches on the deepest features: "
             "none = plain U-Net; trained = trained with their losses but not fed to the "
             "decoder; injected = their outputs also join the decoder blocks of "
             "model.inject_blocks as extra channels"},
    {"model.inject_blocks", INI_STRING, FIELD(inject_blocks), "0",
     .help = "comma-separated decoder blocks (0 = the deepest, at 1/16 of the input, .. 4 = "
             "full size) whose input gets the branches' 5 x classes planes"},
    {"model.branch_dropout", INI_FLOAT, FIELD(branch_dropout), "0.25", 0, 0.95,
     .help = "dropout probability in the class branch (training only)"},
    {"model.init", INI_STRING, FIELD(init), .default_text = "",
     .help = "HDF5 file of named starting weights (e.g. an ImageNet encoder converted with "
             "docs/examples/convert_weights.py): any subset of the model's tensors by PyTorch "
             "name, used when training starts afresh; empty = random initialisation"},
    {"model.classes", INI_INT, FIELD(classes), "0", 0, 255,
     .help = "number of classes (2..255); 0 = take it from the dataset"},
    {"model.height", INI_INT, FIELD(height), "288", 32, 4096,
     .help = "input height in pixels, a multiple of 32; must match the dataset"},
    {"model.width", INI_INT, FIELD(width), "192", 32, 4096,
     .help = "input width in pixels, a multiple of 32; must match the dataset"},
    {"model.backend", INI_ENUM, FIELD(backend), "auto", .words = RUNTIME_BACKEND_WORDS,
     .help = RUNTIME_BACKEND_HELP},
    {"model.precision", INI_ENUM, FIELD(precision), "auto", .words = RUNTIME_PRECISION_WORDS,
     .help = "fp32, or bf16 or fp16 mixed precision (16-bit activations and weight copies, f32 "
             "master weights, loss, gradients and optimiser; fp16 only on GPUs, with loss "
             "scaling); " RUNTIME_PRECISION_AUTO_HELP},
    {"train.batch", INI_INT, FIELD(batch), "8", 1, 1024, .help = "images per step (per rank)"},
    {"train.epochs", INI_INT, FIELD(epochs), "30", 1, 100000,
     .help = "passes over the training images with every layer trained (after "
             "train.frozen_epochs)"},
    {"train.frozen_epochs", INI_INT, FIELD(frozen_epochs), "0", 0, 100000,
     .help = "first phase: epochs with the encoder frozen (no gradients computed for it, no "
             "updates), its own one-cycle schedule to train.frozen_lr; 0 = no such phase"},
    {"train.frozen_lr", INI_FLOAT, FIELD(frozen_lr), "1e-3", 0, 10, .min_open = 1,
     .help = "peak learning rate of the frozen phase; the second phase (train.epochs, "
             "train.lr) then starts a new schedule and a new Adam state"},
    {"train.patience", INI_INT, FIELD(patience), "0", 0, 100000,
     .help = "early stopping: stop when val_miou has not improved for this many epochs of the "
             "second phase (best.h5 keeps the best); 0 = never"},
    {"train.class_loss_weight", INI_FLOAT, FIELD(class_loss_weight), "1", 0, 1e6,
     .help = "w_cls: weight of the class-presence BCE in the loss (with model.branches)"},
    {"train.box_loss_weight", INI_FLOAT, FIELD(box_loss_weight), "75", 0, 1e6,
     .help = "w_box: weight of the box smooth-L1 in the loss (with model.branches; the "
             "paper's 75)"},
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
    {"train.loss_scale", INI_ENUM, FIELD(loss_scale), "auto", .words = "auto|none|dynamic|fixed",
     .help = "loss scaling: dynamic = gradients of the loss times a power of two that halves on "
             "non-finite gradients (that step's update skipped) and doubles after "
             "train.loss_scale_interval finite steps; fixed = always train.loss_scale_init; "
             "none = 1; auto = dynamic with model.precision fp16, else none"},
    {"train.loss_scale_init", INI_FLOAT, FIELD(loss_scale_init), "65536", 1, 0x1p127,
     .help = "the loss scale to start from (dynamic) or keep (fixed); a power of two, at most "
             "2^127"},
    {"train.loss_scale_interval", INI_INT, FIELD(loss_scale_interval), "2000", 1, 100000000,
     .help = "dynamic loss scaling: finite steps in a row before the scale doubles"},
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
    {"train.graphs", INI_BOOL, FIELD(graphs), "true",
     .help = "replay each training step as a device graph (CUDA graphs) where it can be"},
    {"checkpoint.dir", INI_STRING, FIELD(checkpoint_dir), "runs/default",
     .help = "directory for last.h5 and best.h5 (created if missing)"},
    {"checkpoint.every", INI_INT, FIELD(checkpoint_every), "1", 1, 100000,
     .help = "epochs between saves of last.h5 (the final epoch is always saved)"},
    {"checkpoint.resume", INI_ENUM, FIELD(resume), "auto", .words = "no|auto",
     .help = "auto: continue from checkpoint.dir/last.h5 if it exists; no: start afresh"},
    /* [augment]: what data.augment = true applies (io/dataset/augment.h). The defaults are the flip
       preset's; augment.preset sets the other keys' starting values and explicit keys win. */
    {"augment.preset", INI_ENUM, FIELD(augment_preset), "flip", .words = AUGMENT_PRESET_WORDS,
     .help = "starting values of the keys below: none = all off; flip = flip 0.5, the rest off; "
             "all = flip 0.5, the rest 1 (the old always-on augmentation)"},
    {"augment.flip", INI_FLOAT, FIELD(augmentation.flip), "0.5", 0, 1,
     .help = "probability of a left-right mirror"},
    {"augment.rotate", INI_FLOAT, FIELD(augmentation.rotate), "0", 0, 1,
     .help = "probability of a rotation"},
    {"augment.rotate_degrees", INI_FLOAT, FIELD(augmentation.rotate_degrees), "10", 0, 180,
     .help = "rotation angle uniform in [-d, d] degrees"},
    {"augment.zoom", INI_FLOAT, FIELD(augmentation.zoom), "0", 0, 1,
     .help = "probability of a zoom"},
    {"augment.zoom_min", INI_FLOAT, FIELD(augmentation.zoom_min), "0.7", 0, 1, .min_open = 1,
     .help = "smallest zoom factor (< 1 shrinks the content)"},
    {"augment.zoom_max", INI_FLOAT, FIELD(augmentation.zoom_max), "1.3", 1, 10,
     .help = "largest zoom factor (> 1 enlarges the content)"},
    {"augment.shift", INI_FLOAT, FIELD(augmentation.shift), "0", 0, 1,
     .help = "probability of a shift"},
    {"augment.shift_fraction", INI_FLOAT, FIELD(augmentation.shift_fraction), "0.1", 0, 1,
     .help = "shift uniform in [-f, f] of the height and, independently, of the width"},
    {"augment.brightness", INI_FLOAT, FIELD(augmentation.brightness), "0", 0, 1,
     .help = "probability of a brightness change"},
    {"augment.brightness_range", INI_FLOAT, FIELD(augmentation.brightness_range), "0.2", 0, 1,
     .help = "brightness multiplier uniform in [1 - r, 1 + r]"},
    {"augment.contrast", INI_FLOAT, FIELD(augmentation.contrast), "0", 0, 1,
     .help = "probability of a contrast change"},
    {"augment.contrast_range", INI_FLOAT, FIELD(augmentation.contrast_range), "0.2", 0, 1,
     .help = "contrast multiplier (about mid-grey) uniform in [1 - r, 1 + r]"},
};
enum { KEY_COUNT = sizeof keys / sizeof keys[0] };

static const ini_schema schema = {"train_config", keys, KEY_COUNT};

void train_config_defaults(train_config *cfg) {
  ini_defaults(&schema, cfg, sizeof *cfg);
}

void train_config_load(train_config *cfg, const char *path, int override_count, char **overrides) {
  train_config start = *cfg;
  ini_load(&schema, cfg, path, override_count, overrides);
  /* augment.preset gives the [augment] keys their starting values and the keys given in the file
   * or on the command line win: load again on top of the preset's values. */
  char preset[sizeof cfg->augment_preset];
  memcpy(preset, cfg->augment_preset, sizeof preset);
  *cfg = start;
  FP_CHECK(augment_preset(preset, &cfg->augmentation), "augment.preset: unknown preset '%s'",
           preset);
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
  train_config_branches(cfg, origin);
  FP_CHECK(cfg->dataset[0], "%s: data.dataset is not set (the HDF5 file made by `ingest`)", origin);
  FP_CHECK(!cfg->tags_dataset[0] || train_config_branches(cfg, origin).mode != BRANCHES_NONE,
           "%s: data.tags_dataset needs model.branches (its images train the class branch only)",
           origin);
  FP_CHECK(!cfg->tags_dataset[0] || cfg->ignore_label == DATASET_IGNORE_LABEL,
           "%s: data.tags_dataset needs data.ignore_label = %d (tag-only images get masks of it)",
           origin, DATASET_IGNORE_LABEL);
  FP_CHECK(loss_scale_valid(cfg->loss_scale_init),
           "%s: train.loss_scale_init = %g is not a power of two (2^k keeps loss scaling exact)",
           origin, cfg->loss_scale_init);
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

/* "0,2" -> bits 0 and 2; returns -1 with p filled on a bad list. */
static int parse_block_list(const char *text, unsigned *blocks, ini_problem *p) {
  *blocks = 0;
  const char *s = text;
  for (;;) {
    char *end = NULL;
    errno = 0;
    long block = strtol(s, &end, 10);
    if (end == s || errno || block < 0 || block > 4)
      return ini_complain(p, "'%s' is not a comma-separated list of decoder blocks 0..4", text);
    *blocks |= 1u << block;
    s = end;
    while (*s == ' ') s++;
    if (!*s) return 0;
    if (*s++ != ',')
      return ini_complain(p, "'%s' is not a comma-separated list of decoder blocks 0..4", text);
  }
}

branch_config train_config_branches(const train_config *cfg, const char *origin) {
  branch_config b = {BRANCHES_NONE, 0, (float)cfg->branch_dropout};
  FP_CHECK(branch_mode_parse(cfg->branches, &b.mode) == 0, "%s: model.branches '%s'", origin,
           cfg->branches);
  ini_problem p;
  if (b.mode == BRANCHES_INJECTED && parse_block_list(cfg->inject_blocks, &b.inject_blocks, &p))
    FP_FATAL("%s: model.inject_blocks: %s", origin, p.text);
  return b;
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
