/* io/catalog/catalog_prior.c: the input is the rule table, then optionally a line "--csv--"
 * and the id,product_type CSV (else a header-only CSV). A loaded prior must leave
 * every rule at least one class. */
#include <math.h>

#include "catalog_prior.h"
#include "harness_common.h"

static char *const class_names[] = {"background", "skin",  "hair",  "top", "dress",
                                    "skirt",      "pants", "shoes", "bag", "hat"};
enum { CLASS_COUNT = sizeof class_names / sizeof class_names[0] };

typedef struct prior_case {
  const char *table, *csv;
  category_prior *prior;
} prior_case;

static void load(void *context) {
  prior_case *c = context;
  c->prior = category_prior_load(c->table, c->csv, class_names, CLASS_COUNT);
}

static void check_ids(const category_prior *p) {
  static const char *ids[] = {"a", "b", "img1", "img2", "x"};
  float logits[CLASS_COUNT];
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    const char *type;
    int rule = category_prior_rule(p, ids[i], &type);
    fuzz_require(type != NULL, "product type");
    if (rule < 0) continue;
    for (int k = 0; k < CLASS_COUNT; k++) logits[k] = 0;
    category_prior_apply(p, rule, logits, 1);
    int allowed = 0;
    for (int k = 0; k < CLASS_COUNT; k++) allowed += isfinite(logits[k]);
    fuzz_require(allowed > 0, "a rule allows a class");
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char header_only[] = "id,product_type\n";
  size_t table_size, csv_size;
  const uint8_t *csv;
  prior_case c = {NULL, NULL, NULL};
  if (!fuzz_split(data, size, "--csv--", &table_size, &csv, &csv_size)) {
    csv = (const uint8_t *)header_only;
    csv_size = sizeof header_only - 1;
  }
  c.csv = fuzz_write_file("products.csv", csv, csv_size);
  c.table = fuzz_write_file("table.prior", data, table_size);
  if (fuzz_guarded(load, &c)) return 0;
  check_ids(c.prior);
  category_prior_table_hash(c.prior);
  category_prior_csv_hash(c.prior);
  category_prior_free(c.prior);
  return 0;
}
