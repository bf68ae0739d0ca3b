#include "catalog_job.h"

#include <math.h>
#include <string.h>

#include "check.h"
#include "ini.h"
#include "runtime.h"

#define FIELD(member) INI_FIELD(catalog_job, member)

static const ini_key keys[] = {
    {"catalog.source", INI_STRING, FIELD(source), "",
     .help = "the images: an HDF5 dataset made by `ingest`, a directory of .jpg/.jpeg files, or "
             "a list file with one JPEG path per line (required)"},
    {"catalog.limit", INI_INT64, FIELD(limit), "0", 0, INFINITY,
     .help = "parse only the first N images of the catalog, 0 = all"},
    {"model.checkpoint", INI_STRING, FIELD(checkpoint), "",
     .help = "checkpoint written by `train` (required)"},
    {"model.classes", INI_INT, FIELD(classes), "0", 0, 255,
     .help = "class count the checkpoint must have; 0 = any"},
    {"model.height", INI_INT, FIELD(height), "0", 0, 4096,
     .help = "input height the checkpoint must have (a multiple of 32); 0 = any"},
    {"model.width", INI_INT, FIELD(width), "0", 0, 4096,
     .help = "input width the checkpoint must have (a multiple of 32); 0 = any"},
    {"model.batch", INI_INT, FIELD(batch), "8", 1, 1024, .help = "images per forward pass"},
    {"model.threads", INI_INT, FIELD(threads), "0", 0, 4096,
     .help = "threads per rank (model, decoding, statistics, compression), 0 = all cores"},
    {"model.backend", INI_ENUM, FIELD(backend), "auto", .words = RUNTIME_BACKEND_WORDS,
     .help = RUNTIME_BACKEND_HELP},
    {"model.precision", INI_ENUM, FIELD(precision), "auto", .words = RUNTIME_PRECISION_WORDS,
     .help = "fp32, bf16 or fp16 (GPU) activations and weights; " RUNTIME_PRECISION_AUTO_HELP},
    {"model.graphs", INI_BOOL, FIELD(graphs), "true",
     .help = "replay each batch's model pass as a device graph (CUDA graphs) where it can be"},
    {"output.dir", INI_STRING, FIELD(dir), "",
     .help = "output directory: master.h5, shards/, the manifest (required; created if missing)"},
    {"output.job_id", INI_STRING, FIELD(job_id), "",
     .help = "names the run in the output's attributes; empty = the output directory's name"},
    {"output.source_masks", INI_BOOL, FIELD(source_masks), "false",
     .help = "also store each mask mapped back to the photo's own size (/masks_source)"},
    {"output.source_max_height", INI_INT, FIELD(source_max_height), "1024", 1, 16384,
     .help = "frame of /masks_source: photos taller than this are recorded in /failed"},
    {"output.source_max_width", INI_INT, FIELD(source_max_width), "1024", 1, 16384,
     .help = "frame of /masks_source: photos wider than this are recorded in /failed"},
    {"output.zstd_level", INI_INT, FIELD(zstd_level), "3", 1, 19,
     .help = "zstd level of the masks and tables (filter 32015)"},
    {"schedule.mode", INI_ENUM, FIELD(mode), "dynamic", .words = "dynamic|static",
     .help = "dynamic: ranks ask rank 0 for the next chunk; static: chunk i goes to rank i mod N"},
    {"schedule.chunk", INI_INT, FIELD(chunk), "64", 1, 4096,
     .help = "images per chunk: the unit of scheduling, of the manifest and of resuming"},
    {"schedule.progress_seconds", INI_FLOAT, FIELD(progress_seconds), "10", 0, 86400,
     .help = "seconds between progress lines on rank 0 (0 = after every chunk)"},
    {"prior.table", INI_STRING, FIELD(prior_table), "",
     .help = "category prior: product type -> allowed/forbidden classes (with prior.csv)"},
    {"prior.csv", INI_STRING, FIELD(prior_csv), "",
     .help = "category prior: CSV 'id,product_type' of the catalog's images (with prior.table)"},
    {"prior.inject", INI_BOOL, FIELD(prior_inject), "false",
     .help = "with a checkpoint whose Extended U-Net branches are injected: for images with a "
             "rule, inject the classes the rule allows as the class presence (ground-truth "
             "injection) instead of the class branch's output"},
    {"nightly.previous", INI_STRING, FIELD(previous), "",
     .help = "the previous run's output directory: unchanged images are copied from it"},
};

static const ini_schema schema = {"catalog_job", keys, (int)(sizeof keys / sizeof keys[0])};

void catalog_job_defaults(catalog_job *job) {
  ini_defaults(&schema, job, sizeof *job);
}

static void validate(const catalog_job *job, const char *origin) {
  FP_CHECK(job->source[0],
           "%s: catalog.source is not set (an HDF5 dataset, a directory of JPEGs "
           "or a list file)",
           origin);
  FP_CHECK(job->checkpoint[0], "%s: model.checkpoint is not set", origin);
  FP_CHECK(job->dir[0], "%s: output.dir is not set", origin);
  FP_CHECK(job->height % 32 == 0, "%s: model.height = %d is not a multiple of 32", origin,
           job->height);
  FP_CHECK(job->width % 32 == 0, "%s: model.width = %d is not a multiple of 32", origin,
           job->width);
  FP_CHECK(job->classes != 1, "%s: model.classes = 1; give 2..255, or 0 for any", origin);
  FP_CHECK(!job->prior_table[0] == !job->prior_csv[0],
           "%s: prior.table and prior.csv go together (one is set, the other is not)", origin);
  FP_CHECK(!job->prior_inject || job->prior_table[0],
           "%s: prior.inject needs a category prior (prior.table and prior.csv)", origin);
}

void catalog_job_load(catalog_job *job, const char *path, int override_count, char **overrides) {
  ini_load(&schema, job, path, override_count, overrides);
  validate(job, path);
}

size_t catalog_job_to_ini(const catalog_job *job, char *buf, size_t cap) {
  return ini_to_text(&schema, job, buf, cap);
}

void catalog_job_print_help(FILE *out) {
  ini_print_help(&schema, out);
}
