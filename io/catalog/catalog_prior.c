#include "catalog_prior.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog_idmap.h"
#include "catalog_source.h"
#include "check.h"
#include "hash.h"

typedef struct prior_rule {
  char product_type[PRIOR_TYPE_LENGTH];
  uint8_t *allowed; /* [num_classes] */
} prior_rule;

struct category_prior {
  int num_classes;
  prior_rule *rules;
  int rule_count;
  id_map *rule_of_type;
  id_map *image_row; /* id -> index into image_types */
  char (*image_types)[PRIOR_TYPE_LENGTH];
  int64_t image_count;
  uint64_t table_hash, csv_hash;
};

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
    s[--n] = '\0';
  return s;
}

static int class_index(char *const *class_names, int num_classes, const char *name) {
  for (int k = 0; k < num_classes; k++)
    if (!strcmp(class_names[k], name)) return k;
  return -1;
}

static FILE *open_text(const char *path, const char *what) {
  FILE *f = fopen(path, "r");
  FP_CHECK(f, "%s: cannot open the %s: %s", path, what, strerror(errno));
  return f;
}

static void parse_rule(category_prior *p, const char *path, int line_no, char *line,
                       char *const *class_names) {
  char *colon = strchr(line, ':');
  FP_CHECK(colon, "%s:%d: expected '<product type> : forbid|allow <classes>', got '%s'", path,
           line_no, line);
  *colon = '\0';
  char *type = trim(line), *rest = trim(colon + 1);
  FP_CHECK(*type && strlen(type) < PRIOR_TYPE_LENGTH,
           "%s:%d: product type '%s' is empty or longer than %d characters", path, line_no, type,
           PRIOR_TYPE_LENGTH - 1);
  size_t verb_length = strcspn(rest, " \t");
  int allow = verb_length == 5 && !strncmp(rest, "allow", 5);
  FP_CHECK(allow || (verb_length == 6 && !strncmp(rest, "forbid", 6)),
           "%s:%d: product type '%s': expected 'forbid' or 'allow' after ':', got '%s'", path,
           line_no, type, rest);
  FP_CHECK(id_map_put(p->rule_of_type, type, p->rule_count) < 0,
           "%s:%d: product type '%s' has a rule already", path, line_no, type);
  p->rules = realloc(p->rules, (size_t)(p->rule_count + 1) * sizeof *p->rules);
  FP_CHECK(p->rules, "out of memory");
  prior_rule *rule = &p->rules[p->rule_count++];
  snprintf(rule->product_type, sizeof rule->product_type, "%s", type);
  rule->allowed = fp_malloc((size_t)p->num_classes);
  memset(rule->allowed, allow ? 0 : 1, (size_t)p->num_classes);
  int listed = 0;
  for (char *name = strtok(rest + verb_length, " \t,"); name; name = strtok(NULL, " \t,")) {
    int k = class_index(class_names, p->num_classes, name);
    FP_CHECK(k >= 0, "%s:%d: product type '%s': the model has no class '%s'", path, line_no, type,
             name);
    rule->allowed[k] = (uint8_t)allow;
    listed++;
  }
  FP_CHECK(listed > 0, "%s:%d: product type '%s' lists no classes", path, line_no, type);
  int allowed = 0;
  for (int k = 0; k < p->num_classes; k++) allowed += rule->allowed[k];
  FP_CHECK(allowed > 0, "%s:%d: product type '%s' forbids every class", path, line_no, type);
}

static uint64_t load_table(category_prior *p, const char *path, char *const *class_names) {
  FILE *f = open_text(path, "category prior table");
  char *line = NULL;
  size_t cap = 0;
  int line_no = 0;
  uint64_t hash = FNV1A64_START;
  ssize_t length;
  while ((length = getline(&line, &cap, f)) >= 0) {
    line_no++;
    hash = fnv1a64_update(hash, line, (size_t)length);
    char *hash_mark = strchr(line, '#');
    if (hash_mark) *hash_mark = '\0';
    char *text = trim(line);
    if (*text) parse_rule(p, path, line_no, text, class_names);
  }
  int failed = ferror(f);
  free(line);
  fclose(f);
  FP_CHECK(!failed, "%s: read error", path);
  FP_CHECK(p->rule_count > 0, "%s: no rules", path);
  return hash;
}

static uint64_t load_csv(category_prior *p, const char *path) {
  FILE *f = open_text(path, "product type CSV");
  char *line = NULL;
  size_t cap = 0;
  int line_no = 0;
  uint64_t hash = FNV1A64_START;
  ssize_t length;
  int64_t capacity = 0;
  p->image_row = id_map_create(1024, ID_MAP_COPIES);
  while ((length = getline(&line, &cap, f)) >= 0) {
    line_no++;
    hash = fnv1a64_update(hash, line, (size_t)length);
    char *text = trim(line);
    if (line_no == 1) {
      FP_CHECK(!strcmp(text, "id,product_type"),
               "%s:1: the header must be 'id,product_type', not '%s'", path, text);
      continue;
    }
    if (!*text) continue;
    FP_CHECK(!strchr(text, '"'), "%s:%d: quoted fields are not supported: %s", path, line_no, text);
    char *comma = strchr(text, ',');
    FP_CHECK(comma && !strchr(comma + 1, ','), "%s:%d: expected 'id,product_type', got '%s'", path,
             line_no, text);
    *comma = '\0';
    char *id = trim(text), *type = trim(comma + 1);
    FP_CHECK(*id && strlen(id) < CATALOG_ID_LENGTH, "%s:%d: id '%s' is empty or too long", path,
             line_no, id);
    FP_CHECK(strlen(type) < PRIOR_TYPE_LENGTH, "%s:%d: product type '%s' is longer than %d", path,
             line_no, type, PRIOR_TYPE_LENGTH - 1);
    FP_CHECK(id_map_put(p->image_row, id, p->image_count) < 0, "%s:%d: id '%s' is listed twice",
             path, line_no, id);
    if (p->image_count == capacity) {
      capacity = capacity ? 2 * capacity : 1024;
      p->image_types = realloc(p->image_types, (size_t)capacity * sizeof *p->image_types);
      FP_CHECK(p->image_types, "out of memory");
    }
    snprintf(p->image_types[p->image_count++], PRIOR_TYPE_LENGTH, "%s", type);
  }
  int failed = ferror(f);
  free(line);
  fclose(f);
  FP_CHECK(!failed, "%s: read error", path);
  FP_CHECK(line_no > 0, "%s: empty file (expected the header 'id,product_type')", path);
  return hash;
}

category_prior *category_prior_load(const char *table_path, const char *csv_path,
                                    char *const *class_names, int num_classes) {
  category_prior *p = fp_calloc(1, sizeof *p);
  p->num_classes = num_classes;
  p->rule_of_type = id_map_create(64, ID_MAP_COPIES);
  p->table_hash = load_table(p, table_path, class_names);
  p->csv_hash = load_csv(p, csv_path);
  return p;
}

void category_prior_free(category_prior *p) {
  if (!p) return;
  for (int r = 0; r < p->rule_count; r++) free(p->rules[r].allowed);
  free(p->rules);
  id_map_free(p->rule_of_type);
  id_map_free(p->image_row);
  free(p->image_types);
  free(p);
}

int category_prior_rule(const category_prior *p, const char *id, const char **product_type) {
  int64_t row = id_map_get(p->image_row, id);
  if (product_type) *product_type = row >= 0 ? p->image_types[row] : "";
  return row >= 0 ? (int)id_map_get(p->rule_of_type, p->image_types[row]) : -1;
}

int category_prior_allows(const category_prior *p, int rule, int k) {
  FP_CHECK(rule >= 0 && rule < p->rule_count && k >= 0 && k < p->num_classes,
           "category prior: rule %d, class %d", rule, k);
  return p->rules[rule].allowed[k];
}

void category_prior_apply(const category_prior *p, int rule, float *logits, size_t plane) {
  for (int k = 0; k < p->num_classes; k++) {
    if (category_prior_allows(p, rule, k)) continue;
    float *channel = logits + (size_t)k * plane;
    for (size_t i = 0; i < plane; i++) channel[i] = -INFINITY;
  }
}

uint64_t category_prior_table_hash(const category_prior *p) {
  return p->table_hash;
}

uint64_t category_prior_csv_hash(const category_prior *p) {
  return p->csv_hash;
}
