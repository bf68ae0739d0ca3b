/* Category prior: per-image allowed classes from catalog metadata. A product
 * type ("skirt") rules out classes the photo cannot show ("dress"): their
 * logits are set to -inf before argmax and softmax.
 *
 * The table (e.g. jobs/category_prior/ccp59.prior; format in
 * jobs/category_prior/README.md), one rule per line, '#' starts a comment:
 *
 *   <product type> : forbid <class> [<class> ...]
 *   <product type> : allow <class> [<class> ...]
 *
 * Classes are the model's class names, separated by blanks or commas; `allow`
 * forbids every class it does not list. A rule may not forbid every class.
 * The CSV side input has the header `id,product_type` and one image per line
 * (plain comma-separated fields, no quoting); ids the catalog lacks are
 * ignored, and a product type without a rule applies no prior. */
#ifndef FP_CATALOG_PRIOR_H
#define FP_CATALOG_PRIOR_H

#include <stddef.h>
#include <stdint.h>

#define PRIOR_TYPE_LENGTH 64 /* product type, NUL-terminated */

typedef struct category_prior category_prior;

/* Loads both files; class names are checked against class_names[num_classes].
 * FP_FATAL naming the file and line on any error (unknown class, duplicate
 * rule or id, malformed line). */
category_prior *category_prior_load(const char *table_path, const char *csv_path,
                                    char *const *class_names, int num_classes);
void category_prior_free(category_prior *p);

/* The rule for image id (an index), or -1 when it has none. *product_type (may
 * be NULL) receives the CSV's product type, "" when the CSV does not list it. */
int category_prior_rule(const category_prior *p, const char *id, const char **product_type);
/* 1 when rule r allows class k, else 0. */
int category_prior_allows(const category_prior *p, int rule, int k);
/* Sets the logits of every class rule r forbids to -inf: logits is one image's
 * [num_classes][plane] plain (NCHW) block. */
void category_prior_apply(const category_prior *p, int rule, float *logits, size_t plane);
/* FNV-1a 64 of the table's bytes and of the CSV's bytes: identify them in fingerprints. */
uint64_t category_prior_table_hash(const category_prior *p);
uint64_t category_prior_csv_hash(const category_prior *p);

#endif
