/* Job-file parser: defaults, parsing, overrides, every error class (run in a
 * child process, since errors exit), and to_ini round trips.
 * Usage: test_config [JOBFILE ...]   (each JOBFILE must also load and validate) */
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"

static int failures = 0;
static int checks = 0;
static char temp_dir[] = "/tmp/test_config_XXXXXX";

static void expect(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void expect(int ok, const char *fmt, ...) {
  checks++;
  if (ok) return;
  failures++;
  va_list args;
  va_start(args, fmt);
  printf("FAIL: ");
  vprintf(fmt, args);
  printf("\n");
  va_end(args);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f || fputs(text, f) == EOF || fclose(f) != 0) {
    printf("FAIL: cannot write %s\n", path);
    exit(1);
  }
}

/* Reads at most cap-1 bytes of path; returns the empty string if it cannot. */
static void read_text(const char *path, char *buf, size_t cap) {
  buf[0] = '\0';
  FILE *f = fopen(path, "r");
  if (!f) return;
  size_t n = fread(buf, 1, cap - 1, f);
  buf[n] = '\0';
  fclose(f);
}

static void job_path(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "%s/%s", temp_dir, name);
}

static void load_text(train_config *cfg, const char *name, const char *text, int override_count,
                      char **overrides) {
  char path[256];
  job_path(path, sizeof path, name);
  write_text(path, text);
  train_config_defaults(cfg);
  train_config_load(cfg, path, override_count, overrides);
}

typedef enum names_location { IN_FILE, ON_COMMAND_LINE, NOWHERE } names_location;

typedef struct fatal_case {
  const char *what;
  const char *job_text;     /* NULL: the job file does not exist */
  const char *overrides[3]; /* NULL-terminated */
  int validate;             /* also run train_config_validate */
  int weights_for;          /* > 0: also call train_config_class_weights with this many classes */
  names_location location;  /* IN_FILE: message names the job path; ON_COMMAND_LINE: "command
                               line"; NOWHERE: neither is required */
  const char *needles[5];   /* NULL-terminated (so at most 4): the message must contain each */
} fatal_case;

/* Runs the case in a child with stderr sent to a file; it must exit 1 with every needle. */
static void expect_fatal(const fatal_case *c, int index) {
  char path[256], err_path[256], name[64];
  snprintf(name, sizeof name, "fatal_%02d.ini", index);
  job_path(path, sizeof path, name);
  job_path(err_path, sizeof err_path, "stderr.txt");
  if (c->job_text)
    write_text(path, c->job_text);
  else
    unlink(path);
  char *overrides[3];
  int override_count = 0;
  while (override_count < 3 && c->overrides[override_count]) {
    overrides[override_count] = (char *)c->overrides[override_count];
    override_count++;
  }
  fflush(stdout); /* the child's exit() would flush a second copy */
  pid_t pid = fork();
  if (pid < 0) {
    printf("FAIL: fork: %s\n", c->what);
    exit(1);
  }
  if (pid == 0) {
    int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) _exit(99);
    close(fd);
    train_config cfg;
    train_config_defaults(&cfg);
    train_config_load(&cfg, path, override_count, overrides);
    if (c->validate) train_config_validate(&cfg, path);
    if (c->weights_for) {
      float weights[256];
      train_config_class_weights(&cfg, c->weights_for, weights);
    }
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  char message[4096];
  read_text(err_path, message, sizeof message);
  int exited_1 = WIFEXITED(status) && WEXITSTATUS(status) == 1;
  expect(exited_1, "%s: expected exit status 1, got %s %d (stderr: %s)", c->what,
         WIFEXITED(status) ? "exit" : "signal",
         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), message);
  expect(!strncmp(message, "error: ", 7), "%s: message does not start with 'error: ': %s", c->what,
         message);
  if (c->location == IN_FILE)
    expect(strstr(message, path) != NULL, "%s: message does not name %s: %s", c->what, path,
           message);
  if (c->location == ON_COMMAND_LINE)
    expect(strstr(message, "command line") != NULL, "%s: message does not say 'command line': %s",
           c->what, message);
  for (int i = 0; c->needles[i]; i++)
    expect(strstr(message, c->needles[i]) != NULL, "%s: message lacks '%s': %s", c->what,
           c->needles[i], message);
}

static void test_defaults(void) {
  train_config cfg;
  train_config_defaults(&cfg);
  expect(!strcmp(cfg.dataset, "") && !strcmp(cfg.val_dataset, ""), "default dataset paths empty");
  expect(cfg.limit == 0 && cfg.val_limit == 0, "default limits 0");
  expect(cfg.augment == 1, "default augment true");
  expect(!strcmp(cfg.class_weights, "default"), "default class_weights");
  expect(cfg.ignore_label == 255, "default ignore_label 255");
  expect(!strcmp(cfg.arch, "r34"), "default arch r34");
  expect(cfg.classes == 0 && cfg.height == 288 && cfg.width == 192, "default classes/size");
  expect(cfg.batch == 8 && cfg.epochs == 30, "default batch/epochs");
  expect(!strcmp(cfg.optimizer, "adamw"), "default optimizer adamw");
  expect(cfg.lr == 1e-3 && cfg.warmup == 0.1 && cfg.weight_decay == 1e-4, "default lr/warmup/wd");
  expect(cfg.clip_norm == 1.0 && cfg.bn_momentum == 0.1, "default clip_norm/bn_momentum");
  expect(cfg.seed == 1 && cfg.threads == 0 && cfg.log_every == 10, "default seed/threads/log");
  expect(!strcmp(cfg.checkpoint_dir, "runs/default"), "default checkpoint.dir");
  expect(cfg.checkpoint_every == 1 && !strcmp(cfg.resume, "auto"),
         "default checkpoint every/resume");
}

static void test_parse(void) {
  train_config cfg;
  load_text(&cfg, "parse.ini",
            "# full-line comment\n"
            "; another comment\n"
            "\n"
            "[data]\n"
            "dataset = data/ccp.h5   # trailing comment\n"
            "val_dataset=data/val;v2.h5\n"
            "  limit = 64\t; indented, tab before the comment\n"
            "val_limit = 32\r\n"
            "augment = no\n"
            "class_weights = 1, 2.5,3\n"
            "[ model ]\n"
            "arch = r18\n"
            "classes = 3\n"
            "height = 192\n"
            "width = 128\n"
            "[train]\n"
            "lr = 3e-3\n"
            "warmup=0.2\n"
            "seed = 18446744073709551615\n"
            "optimizer = adam\n"
            "[checkpoint]\n"
            "dir = runs/a#1\n"
            "resume = no\n",
            0, NULL);
  expect(!strcmp(cfg.dataset, "data/ccp.h5"), "dataset parsed, got '%s'", cfg.dataset);
  expect(!strcmp(cfg.val_dataset, "data/val;v2.h5"), "';' inside a value kept, got '%s'",
         cfg.val_dataset);
  expect(cfg.limit == 64 && cfg.val_limit == 32, "limits parsed (CRLF line)");
  expect(cfg.augment == 0, "augment = no");
  expect(!strcmp(cfg.class_weights, "1, 2.5,3"), "class_weights kept, got '%s'", cfg.class_weights);
  expect(!strcmp(cfg.arch, "r18") && cfg.classes == 3, "arch/classes parsed");
  expect(cfg.height == 192 && cfg.width == 128, "size parsed");
  expect(cfg.lr == 3e-3 && cfg.warmup == 0.2, "lr/warmup parsed");
  expect(cfg.seed == 18446744073709551615ull, "full-range seed parsed");
  expect(!strcmp(cfg.optimizer, "adam"), "optimizer parsed");
  expect(!strcmp(cfg.checkpoint_dir, "runs/a#1"), "'#' without whitespace kept, got '%s'",
         cfg.checkpoint_dir);
  expect(!strcmp(cfg.resume, "no"), "resume parsed");
  expect(cfg.batch == 8 && cfg.epochs == 30, "unset keys keep defaults");
  train_config_validate(&cfg, "parse.ini");

  float weights[3];
  train_config_class_weights(&cfg, 3, weights);
  expect(weights[0] == 1.0f && weights[1] == 2.5f && weights[2] == 3.0f, "class weight list");
  train_config_defaults(&cfg);
  float default_weights[4];
  train_config_class_weights(&cfg, 4, default_weights);
  expect(default_weights[0] == 1.0f && default_weights[1] == 2.0f && default_weights[3] == 2.0f,
         "default class weights 1,2,2,2");
}

static void test_overrides(void) {
  char *overrides[] = {"train.batch=16", "data.dataset=other=name.h5", "model.arch = r18",
                       "train.batch=2"};
  train_config cfg;
  load_text(&cfg, "overrides.ini",
            "[data]\ndataset = data/a.h5\n[model]\narch = r34\n[train]\nbatch = 4\nepochs = 5\n", 4,
            overrides);
  expect(cfg.batch == 2, "last override of train.batch wins, got %d", cfg.batch);
  expect(!strcmp(cfg.dataset, "other=name.h5"), "override value may contain '=', got '%s'",
         cfg.dataset);
  expect(!strcmp(cfg.arch, "r18"), "override with spaces around '='");
  expect(cfg.epochs == 5, "file value kept where not overridden");
}

static void round_trip(const char *what, const train_config *original) {
  char text[16384];
  size_t n = train_config_to_ini(original, text, sizeof text);
  expect(n == strlen(text), "%s: to_ini returns the length written", what);
  train_config reloaded;
  load_text(&reloaded, "round_trip.ini", text, 0, NULL);
  expect(!memcmp(original, &reloaded, sizeof reloaded),
         "%s: to_ini output reloads identically:\n%s", what, text);
}

static void test_to_ini(void) {
  train_config cfg;
  train_config_defaults(&cfg);
  round_trip("defaults", &cfg);
  char text[16384];
  train_config_to_ini(&cfg, text, sizeof text);
  expect(!strncmp(text, "[data]\ndataset =\nval_dataset =\nlimit = 0\n", 41),
         "to_ini starts with [data] in table order:\n%s", text);
  expect(strstr(text, "\n[train]\n") && strstr(text, "lr = 0.001\n") &&
             strstr(text, "\n[checkpoint]\ndir = runs/default\n"),
         "to_ini sections and shortest float text:\n%s", text);

  char *overrides[] = {"data.dataset=data/x y.h5",
                       "data.val_dataset=v.h5",
                       "data.limit=9000000000",
                       "data.val_limit=7",
                       "data.augment=false",
                       "data.class_weights=0.5,1,2",
                       "data.ignore_label=0",
                       "model.arch=r18",
                       "model.classes=3",
                       "model.height=4096",
                       "model.width=32",
                       "train.batch=1024",
                       "train.epochs=100000",
                       "train.optimizer=adam",
                       "train.lr=0.1234567890123",
                       "train.warmup=1",
                       "train.weight_decay=0",
                       "train.clip_norm=1e6",
                       "train.bn_momentum=1e-300",
                       "train.seed=12345678901234567890",
                       "train.threads=7",
                       "train.log_every=3",
                       "checkpoint.dir=runs/a;b#c",
                       "checkpoint.every=5",
                       "checkpoint.resume=no"};
  int count = (int)(sizeof overrides / sizeof overrides[0]);
  load_text(&cfg, "every_key.ini", "", count, overrides);
  expect(cfg.limit == 9000000000LL && cfg.bn_momentum == 1e-300, "64-bit limit, tiny float");
  round_trip("every key changed", &cfg);
}

static void test_help(void) {
  char path[256], text[8192];
  job_path(path, sizeof path, "help.txt");
  FILE *f = fopen(path, "w");
  train_config_print_help(f);
  fclose(f);
  read_text(path, text, sizeof text);
  const char *needles[] = {"data.dataset", "data.class_weights", "r18|r34", "train.lr", "(0, 10]",
                           "[0, inf)",     "checkpoint.resume",  "no|auto", NULL};
  for (const char **needle = needles; *needle; needle++)
    expect(strstr(text, *needle) != NULL, "help lacks '%s':\n%s", *needle, text);
}

static void test_errors(void) {
  char long_value[1200];
  memset(long_value, 'x', sizeof long_value);
  memcpy(long_value, "[data]\ndataset = ", 17);
  memcpy(long_value + sizeof long_value - 2, "\n", 2);
  const fatal_case cases[] = {
      {"unknown key", "[train]\nbatch = 4\nbach = 4\n", .needles = {":3:", "train.bach"}},
      {"unknown section", "[data]\ndataset = a.h5\n[optimiser]\nlr = 1\n",
       .needles = {":3:", "[optimiser]"}},
      {"bad number", "[train]\nbatch = four\n", .needles = {":2:", "train.batch", "four"}},
      {"bad float", "[train]\n\nlr = fast\n", .needles = {":3:", "train.lr", "fast"}},
      {"trailing garbage int", "[train]\nbatch = 4x\n", .needles = {":2:", "train.batch", "4x"}},
      {"trailing garbage float", "[train]\nlr = 1e-3abc\n", .needles = {":2:", "train.lr"}},
      {"hex is not decimal", "[train]\nbatch = 0x10\n", .needles = {":2:", "train.batch"}},
      {"int below range", "[train]\nbatch = 0\n", .needles = {":2:", "train.batch", "[1, 1024]"}},
      {"int above range", "[model]\nheight = 4128\n", .needles = {":2:", "model.height"}},
      {"float at open minimum", "[train]\nlr = 0\n", .needles = {":2:", "train.lr", "(0, 10]"}},
      {"float above range", "[train]\nwarmup = 1.5\n", .needles = {":2:", "train.warmup"}},
      {"int overflow", "[data]\nlimit = 99999999999999999999\n", .needles = {":2:", "data.limit"}},
      {"float overflow", "[train]\nlr = 1e999\n", .needles = {":2:", "train.lr", "out of range"}},
      {"not finite", "[train]\nclip_norm = nan\n", .needles = {":2:", "train.clip_norm"}},
      {"negative unsigned", "[train]\nseed = -1\n", .needles = {":2:", "train.seed"}},
      {"empty number", "[train]\nbatch =\n", .needles = {":2:", "train.batch", "empty"}},
      {"bad bool", "[data]\naugment = maybe\n", .needles = {":2:", "data.augment", "maybe"}},
      {"enum word not allowed", "[model]\narch = r50\n",
       .needles = {":2:", "model.arch", "r50", "r18|r34"}},
      {"duplicate key", "[train]\nbatch = 4\n\nbatch = 8\n",
       .needles = {":4:", "train.batch", "line 2"}},
      {"duplicate key across sections", "[train]\nlr = 1\n[data]\nlimit = 1\n[train]\nlr = 2\n",
       .needles = {":6:", "train.lr"}},
      {"malformed line", "[train]\nbatch 4\n", .needles = {":2:", "batch 4"}},
      {"malformed section", "[train\nbatch = 4\n", .needles = {":1:", "[train"}},
      {"text after section", "[train] batch = 4\n", .needles = {":1:"}},
      {"no key", "[train]\n = 4\n", .needles = {":2:"}},
      {"key before any section", "batch = 4\n", .needles = {":1:", "batch"}},
      {"string too long", long_value, .needles = {":2:", "data.dataset", "1023"}},
      {"missing file", NULL, .needles = {"cannot open"}},
      {"override unknown key",
       "[train]\n",
       {"train.bach=4"},
       .location = ON_COMMAND_LINE,
       .needles = {"train.bach"}},
      {"override malformed",
       "[train]\n",
       {"train.batch"},
       .location = ON_COMMAND_LINE,
       .needles = {"train.batch"}},
      {"override bad value",
       "[train]\n",
       {"train.batch=4", "train.epochs=3.5"},
       .location = ON_COMMAND_LINE,
       .needles = {"train.epochs", "3.5"}},
      {"override out of range",
       "[train]\n",
       {"model.width=8192"},
       .location = ON_COMMAND_LINE,
       .needles = {"model.width", "8192"}},
      {"override string with comment",
       "[train]\n",
       {"checkpoint.dir=runs/x #1"},
       .location = ON_COMMAND_LINE,
       .needles = {"checkpoint.dir"}},
      {"validate: dataset unset", "[train]\nbatch = 4\n", .validate = 1,
       .needles = {"data.dataset"}},
      {"validate: height not multiple of 32", "[data]\ndataset = a.h5\n[model]\nheight = 100\n",
       .validate = 1, .needles = {"model.height", "100", "32"}},
      {"validate: width not multiple of 32", "[data]\ndataset = a.h5\n[model]\nwidth = 48\n",
       .validate = 1, .needles = {"model.width"}},
      {"validate: one class", "[data]\ndataset = a.h5\n[model]\nclasses = 1\n", .validate = 1,
       .needles = {"model.classes"}},
      {"validate: weight count",
       "[data]\ndataset = a.h5\nclass_weights = 1,2\n[model]\nclasses = 3\n", .validate = 1,
       .needles = {"data.class_weights", "3"}},
      {"validate: malformed weights", "[data]\ndataset = a.h5\nclass_weights = 1,,2\n",
       .validate = 1, .needles = {"data.class_weights"}},
      {"validate: negative weight", "[data]\ndataset = a.h5\nclass_weights = 1,-2\n", .validate = 1,
       .needles = {"data.class_weights", "-2"}},
      {"class weights: count differs from dataset", "[data]\nclass_weights = 1,2\n",
       .weights_for = 3, .location = NOWHERE, .needles = {"data.class_weights", "2 weights", "3"}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_fatal(&cases[i], (int)i);
  printf("%zu error cases run\n", sizeof cases / sizeof cases[0]);
}

static int same_augmentation(const augment_settings *a, const augment_settings *b) {
  return !memcmp(a, b, sizeof *a); /* doubles only: no padding */
}

/* [augment]: defaults (the flip preset), presets as starting values that explicit keys (in the
 * file or on the command line) override, and round trips. */
static void test_augment_keys(void) {
  train_config cfg;
  augment_settings flip, all, none;
  augment_preset("flip", &flip);
  augment_preset("all", &all);
  augment_preset("none", &none);
  train_config_defaults(&cfg);
  expect(!strcmp(cfg.augment_preset, "flip") && same_augmentation(&cfg.augmentation, &flip),
         "default [augment] is the flip preset");
  expect(cfg.augmentation.flip == 0.5 && cfg.augmentation.rotate == 0 &&
             cfg.augmentation.zoom == 0 && cfg.augmentation.shift == 0 &&
             cfg.augmentation.brightness == 0 && cfg.augmentation.contrast == 0,
         "default: flip 0.5, every other transform off");
  expect(cfg.augmentation.rotate_degrees == 10 && cfg.augmentation.zoom_min == 0.7 &&
             cfg.augmentation.zoom_max == 1.3 && cfg.augmentation.shift_fraction == 0.1 &&
             cfg.augmentation.brightness_range == 0.2 && cfg.augmentation.contrast_range == 0.2,
         "default ranges");

  load_text(&cfg, "augment_all.ini", "[augment]\npreset = all\n", 0, NULL);
  expect(same_augmentation(&cfg.augmentation, &all), "preset = all");
  load_text(&cfg, "augment_none.ini", "[augment]\npreset = none\n", 0, NULL);
  expect(same_augmentation(&cfg.augmentation, &none), "preset = none");

  /* Explicit keys win over the preset wherever either is given. */
  char *overrides[] = {"augment.zoom=0.25", "augment.zoom_max=2"};
  load_text(&cfg, "augment_mixed.ini",
            "[augment]\nrotate = 0   # before the preset line\npreset = all\nflip = 0.2\n"
            "brightness_range = 0.5\n",
            2, overrides);
  augment_settings want = all;
  want.rotate = 0;
  want.flip = 0.2;
  want.brightness_range = 0.5;
  want.zoom = 0.25;
  want.zoom_max = 2;
  expect(same_augmentation(&cfg.augmentation, &want),
         "preset all with explicit keys in the file and on the command line: flip %g rotate %g "
         "zoom %g zoom_max %g brightness_range %g",
         cfg.augmentation.flip, cfg.augmentation.rotate, cfg.augmentation.zoom,
         cfg.augmentation.zoom_max, cfg.augmentation.brightness_range);
  round_trip("preset all with explicit keys", &cfg);
  char *preset_override[] = {"augment.preset=none"};
  load_text(&cfg, "augment_cli_preset.ini", "[augment]\nshift = 0.5\n", 1, preset_override);
  want = none;
  want.shift = 0.5;
  expect(same_augmentation(&cfg.augmentation, &want) && !strcmp(cfg.augment_preset, "none"),
         "preset on the command line, key in the file: flip %g shift %g", cfg.augmentation.flip,
         cfg.augmentation.shift);
  round_trip("preset none from the command line", &cfg);

  char *every[] = {"augment.preset=all",
                   "augment.flip=0.125",
                   "augment.rotate=0.3",
                   "augment.rotate_degrees=180",
                   "augment.zoom=1",
                   "augment.zoom_min=1e-3",
                   "augment.zoom_max=10",
                   "augment.shift=0",
                   "augment.shift_fraction=1",
                   "augment.brightness=0.7",
                   "augment.brightness_range=0",
                   "augment.contrast=0.01",
                   "augment.contrast_range=1"};
  load_text(&cfg, "augment_every.ini", "", (int)(sizeof every / sizeof every[0]), every);
  expect(cfg.augmentation.flip == 0.125 && cfg.augmentation.zoom_min == 1e-3 &&
             cfg.augmentation.contrast_range == 1,
         "every [augment] key set");
  char why[200] = "";
  expect(augment_settings_check(&cfg.augmentation, why, sizeof why),
         "the schema's ranges are the loader's: %s", why);
  round_trip("every [augment] key changed", &cfg);
}

/* Bad [augment] values: each rejected naming the key, the value and where. */
static void test_augment_errors(void) {
  const fatal_case cases[] = {
      {"augment: probability above 1", "[augment]\nflip = 1.5\n",
       .needles = {":2:", "augment.flip", "1.5", "[0, 1]"}},
      {"augment: negative probability", "[augment]\n\ncontrast = -0.1\n",
       .needles = {":3:", "augment.contrast", "-0.1"}},
      {"augment: probability not a number", "[augment]\nrotate = often\n",
       .needles = {":2:", "augment.rotate", "often"}},
      {"augment: rotate_degrees", "[augment]\nrotate_degrees = 200\n",
       .needles = {":2:", "augment.rotate_degrees", "[0, 180]"}},
      {"augment: zoom_min 0", "[augment]\nzoom_min = 0\n",
       .needles = {":2:", "augment.zoom_min", "(0, 1]"}},
      {"augment: zoom_min above 1", "[augment]\nzoom_min = 1.2\n",
       .needles = {":2:", "augment.zoom_min"}},
      {"augment: zoom_max below 1", "[augment]\nzoom_max = 0.9\n",
       .needles = {":2:", "augment.zoom_max", "[1, 10]"}},
      {"augment: shift_fraction", "[augment]\nshift_fraction = 1.5\n",
       .needles = {":2:", "augment.shift_fraction"}},
      {"augment: brightness_range", "[augment]\nbrightness_range = nan\n",
       .needles = {":2:", "augment.brightness_range"}},
      {"augment: unknown preset", "[augment]\npreset = most\n",
       .needles = {":2:", "augment.preset", "most", "none|flip|all"}},
      {"augment: unknown key", "[augment]\nflips = 0.5\n", .needles = {":2:", "augment.flips"}},
      {"augment: bad override",
       "[augment]\n",
       {"augment.contrast_range=2"},
       .location = ON_COMMAND_LINE,
       .needles = {"augment.contrast_range", "2"}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_fatal(&cases[i], 100 + (int)i);
  printf("%zu [augment] error cases run\n", sizeof cases / sizeof cases[0]);
}

static void remove_temp_dir(void) {
  char command[300];
  snprintf(command, sizeof command, "rm -rf '%s'", temp_dir);
  if (system(command) != 0) printf("warning: could not remove %s\n", temp_dir);
}

int main(int argc, char **argv) {
  if (!mkdtemp(temp_dir)) {
    printf("FAIL: mkdtemp %s\n", temp_dir);
    return 1;
  }
  test_defaults();
  test_parse();
  test_overrides();
  test_to_ini();
  test_help();
  test_errors();
  test_augment_keys();
  test_augment_errors();
  for (int i = 1; i < argc; i++) {
    train_config cfg;
    train_config_defaults(&cfg);
    train_config_load(&cfg, argv[i], 0, NULL);
    train_config_validate(&cfg, argv[i]);
    round_trip(argv[i], &cfg);
    printf("%s: loads and validates\n", argv[i]);
  }
  remove_temp_dir();
  printf("%s: %d checks, %d failed\n", failures ? "FAIL" : "PASS", checks, failures);
  return failures ? 1 : 0;
}
