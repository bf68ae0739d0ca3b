/* Job files: INI text ([section] headers, `key = value` lines, `#`/`;`
 * comments) describing one training run. Every key lives in one schema table
 * in config.c (type, default, range, help); command-line overrides
 * `section.key=value` are applied after the file. See jobs/README.md. */
#ifndef FP_CONFIG_H
#define FP_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "augment.h"
#include "unet.h"

typedef struct train_config {
  /* [data] */
  char dataset[1024];      /* data.dataset: HDF5 file from `ingest` (relative paths are resolved
                              against the current directory); required */
  char val_dataset[1024];  /* data.val_dataset: optional separate file; empty = use the val split
                              of data.dataset */
  int64_t limit;           /* data.limit: use at most N training images, 0 = all (>=0) */
  int64_t val_limit;       /* data.val_limit: at most N validation images, 0 = all */
  char tags_dataset[1024]; /* data.tags_dataset: optional tag-only file (ingest's FILE_tags.h5)
                              whose train split joins training, for the class branch only */
  int64_t tags_limit;      /* data.tags_limit: at most N of its images, 0 = all */
  int augment;             /* data.augment: bool, default true */
  char class_weights[256]; /* data.class_weights: "default" (background 1, others 2) or
                              comma-separated list of K floats */
  int ignore_label;        /* data.ignore_label: 0..255, default 255 */
  /* [model] */
  char arch[16];          /* model.arch: enum UNET_ARCH_WORDS, default r34 */
  char init[1024];        /* model.init: starting weights by name, empty = none (default) */
  char branches[16];      /* model.branches: enum BRANCH_MODE_WORDS, default none */
  char inject_blocks[64]; /* model.inject_blocks: decoder blocks 0..4, comma-separated, "0" */
  double branch_dropout;  /* model.branch_dropout: class branch dropout, default 0.25 */
  int classes;            /* model.classes: 2..255; 0 = take from the dataset (default 0) */
  int height, width;      /* model.height default 288, model.width default 192; multiples of 32,
                             32..4096 */
  char backend[16];       /* model.backend: enum auto|cpu|cuda, default auto */
  char precision[16];     /* model.precision: enum auto|fp32|bf16|fp16, default auto */
  /* [train] */
  int batch;         /* train.batch: per-rank batch, 1..1024, default 8 */
  int epochs;        /* 1..100000, default 30: epochs with every layer trained */
  int frozen_epochs; /* train.frozen_epochs: first phase, encoder frozen, default 0 */
  double frozen_lr;  /* train.frozen_lr: the frozen phase's peak lr, default 1e-3 */
  int patience;      /* train.patience: early stopping, epochs without improvement, 0 = off */
  double class_loss_weight; /* train.class_loss_weight: w_cls, default 1 */
  double box_loss_weight;   /* train.box_loss_weight: w_box, default 75 */
  char optimizer[16];       /* enum adamw|adam, default adamw */
  double lr;               /* train.lr: max learning rate of the one-cycle schedule, (0,10], default
                              1e-3 */
  double warmup;           /* train.warmup: fraction of steps warming up, [0,1], default 0.1 */
  double weight_decay;     /* [0,1], default 1e-4 */
  double clip_norm;        /* gradient-norm clipping, 0 = off, [0,1e6], default 1.0 */
  char loss_scale[16];     /* train.loss_scale: enum auto|none|dynamic|fixed, default auto */
  double loss_scale_init;  /* train.loss_scale_init: a power of two in [1,2^127], default 65536 */
  int loss_scale_interval; /* train.loss_scale_interval: 1..1e8, default 2000 */
  double bn_momentum;      /* (0,1], default 0.1 */
  double adam_eps;         /* train.adam_eps: Adam's epsilon, (0,1], default 1e-8 */
  int sync_bn;      /* train.sync_bn: bool, batch-norm statistics over all ranks, default false */
  double bucket_mb; /* train.bucket_mb: gradient all-reduce bucket size in MB, default 4 */
  uint64_t seed;    /* train.seed, default 1 */
  int threads;      /* train.threads: 0 = all cores, default 0 */
  int log_every;    /* progress line every N steps, default 10, >=1 */
  int graphs;       /* 1: training steps through pass_graph.h (CUDA graphs where they can be) */
  /* [checkpoint] */
  char checkpoint_dir[1024]; /* checkpoint.dir, default "runs/default" */
  int checkpoint_every;      /* epochs between checkpoints, >=1, default 1 */
  char resume[16];           /* enum no|auto, default auto */
  /* [augment]: what data.augment = true applies */
  char augment_preset[16];       /* augment.preset: enum none|flip|all, default flip; the other
                                    [augment] keys' starting values (explicit keys win) */
  augment_settings augmentation; /* augment.flip, augment.rotate, augment.rotate_degrees, ...:
                                    probabilities and ranges, see io/dataset/augment.h */
} train_config;

/* Zeroes the whole struct (so two configs with equal values compare equal
 * with memcmp) and sets every key to its default. */
void train_config_defaults(train_config *cfg);
/* Loads path then applies overrides ("section.key=value"); on any error prints a message naming
 * the file, the line number and the key (or "command line" for overrides) and exits 1 via
 * FP_FATAL. Unknown sections/keys, malformed lines, duplicate keys in one file, values that do
 * not parse, out of range, or not in the enum are all errors. A key repeated on the command
 * line takes its last value. */
void train_config_load(train_config *cfg, const char *path, int override_count, char **overrides);
/* Cross-field checks (data.dataset set, height/width multiples of 32, model.classes not 1,
 * data.class_weights well formed); origin names the job in the message. Exits 1 on error. */
void train_config_validate(const train_config *cfg, const char *origin);
/* Writes the resolved config as INI text (every key, in table order) into buf, NUL-terminated;
 * returns bytes written excluding the NUL (for storing in checkpoints). Exits 1 if cap is too
 * small. */
size_t train_config_to_ini(const train_config *cfg, char *buf, size_t cap);
/* Prints every key with type, default, range and help (for --help). */
void train_config_print_help(FILE *out);
/* Parses the class_weights field into K floats (K = classes); "default" gives 1 for class 0 and
 * 2 for the rest. Exits 1 naming the key if the count is wrong or a weight does not parse. */
void train_config_class_weights(const train_config *cfg, int classes, float *weights);
/* model.branches, model.inject_blocks and model.branch_dropout; fatal (naming origin) when
 * malformed. */
branch_config train_config_branches(const train_config *cfg, const char *origin);

#endif
