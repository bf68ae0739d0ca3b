/* Segmentation metrics from a confusion matrix accumulated over batches. */
#ifndef FP_METRICS_H
#define FP_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct confusion {
  int classes;
  int64_t *counts; /* [truth][prediction] */
} confusion;

void confusion_init(confusion *c, int classes);
void confusion_free(confusion *c);
void confusion_reset(confusion *c);
/* Pixels whose truth is ignore_label are skipped. */
void confusion_add(confusion *c, const uint8_t *truth, const uint8_t *prediction, size_t pixels,
                   int ignore_label);

typedef struct seg_metrics {
  double pixel_accuracy;
  double miou_foreground; /* mean IoU over classes 1..K-1 present in truth or prediction */
  double miou_all;        /* the same including background (class 0) */
  double mask_iou;        /* IoU of the foreground/background masks (class != 0) */
  int classes_counted;    /* classes entering miou_foreground */
} seg_metrics;

seg_metrics confusion_metrics(const confusion *c);
/* IoU of class k, or -1 when it appears in neither truth nor prediction. */
double confusion_class_iou(const confusion *c, int k);

/* Pixels counted (every cell of the matrix). */
int64_t confusion_total(const confusion *c);

/* Pixel scores of one class, k as the positive class. An undefined ratio (0/0) is -1:
 * precision when nothing was predicted k, recall when the truth has no k, the F scores when
 * neither has (then IoU is -1 too). F_beta = (1+b^2) tp / (b^2 truth + predicted), which is
 * the harmonic form (1+b^2) P R / (b^2 P + R) wherever P and R are defined, and 0 when one
 * of them is undefined and the other 0; F1 is the Dice coefficient. */
typedef struct class_scores {
  int64_t true_positive; /* counts[k][k] */
  int64_t truth;         /* row k's sum: pixels whose truth is k */
  int64_t predicted;     /* column k's sum: pixels predicted k */
  double precision;      /* tp / predicted */
  double recall;         /* tp / truth */
  double f1, f2;
} class_scores;

class_scores confusion_class_scores(const confusion *c, int k);
/* The same scores from the counts (e.g. of a multilabel classifier's decisions). */
class_scores class_scores_of(int64_t true_positive, int64_t truth, int64_t predicted);

/* K x K percentages, row-major like counts. Row view (recall): out[i][j] = 100 counts[i][j] /
 * row i's sum, so row i sums to 100; column view (precision): out[i][j] = 100 counts[i][j] /
 * column j's sum. A row (column) with no pixels is NaN throughout. */
void confusion_row_percent(const confusion *c, double *out);
void confusion_column_percent(const confusion *c, double *out);

#endif
