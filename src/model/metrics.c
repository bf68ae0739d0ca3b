#include "metrics.h"

#include <math.h>
#include <string.h>

#include "check.h"

void confusion_init(confusion *c, int classes) {
  c->classes = classes;
  c->counts = fp_calloc((size_t)classes * classes, sizeof(int64_t));
}

void confusion_free(confusion *c) {
  free(c->counts);
}

void confusion_reset(confusion *c) {
  memset(c->counts, 0, (size_t)c->classes * c->classes * sizeof(int64_t));
}

void confusion_add(confusion *c, const uint8_t *truth, const uint8_t *prediction, size_t pixels,
                   int ignore_label) {
  for (size_t i = 0; i < pixels; i++) {
    if (truth[i] == ignore_label) continue;
    FP_CHECK(truth[i] < c->classes && prediction[i] < c->classes,
             "metrics: class id %d/%d outside %d classes", truth[i], prediction[i], c->classes);
    c->counts[(size_t)truth[i] * c->classes + prediction[i]]++;
  }
}

double confusion_class_iou(const confusion *c, int k) {
  int64_t intersection = c->counts[(size_t)k * c->classes + k], truth = 0, predicted = 0;
  for (int j = 0; j < c->classes; j++) {
    truth += c->counts[(size_t)k * c->classes + j];
    predicted += c->counts[(size_t)j * c->classes + k];
  }
  int64_t uni = truth + predicted - intersection;
  return uni > 0 ? (double)intersection / (double)uni : -1.0;
}

seg_metrics confusion_metrics(const confusion *c) {
  seg_metrics m = {0};
  int64_t correct = 0, total = 0;
  int64_t fg_both = 0, fg_truth = 0, fg_pred = 0;
  for (int t = 0; t < c->classes; t++)
    for (int p = 0; p < c->classes; p++) {
      int64_t n = c->counts[(size_t)t * c->classes + p];
      total += n;
      if (t == p) correct += n;
      if (t != 0 && p != 0) fg_both += n;
      if (t != 0) fg_truth += n;
      if (p != 0) fg_pred += n;
    }
  m.pixel_accuracy = total ? (double)correct / (double)total : 0.0;
  int64_t fg_union = fg_truth + fg_pred - fg_both;
  m.mask_iou = fg_union ? (double)fg_both / (double)fg_union : 0.0;
  double sum_fg = 0.0, sum_all = 0.0;
  int count_all = 0;
  for (int k = 0; k < c->classes; k++) {
    double iou = confusion_class_iou(c, k);
    if (iou < 0) continue;
    sum_all += iou;
    count_all++;
    if (k != 0) {
      sum_fg += iou;
      m.classes_counted++;
    }
  }
  m.miou_all = count_all ? sum_all / count_all : 0.0;
  m.miou_foreground = m.classes_counted ? sum_fg / m.classes_counted : 0.0;
  return m;
}

int64_t confusion_total(const confusion *c) {
  int64_t total = 0;
  for (size_t i = 0; i < (size_t)c->classes * c->classes; i++) total += c->counts[i];
  return total;
}

static double f_score(double beta2, int64_t tp, int64_t truth, int64_t predicted) {
  double denominator = beta2 * (double)truth + (double)predicted;
  return denominator > 0 ? (1.0 + beta2) * (double)tp / denominator : -1.0;
}

class_scores confusion_class_scores(const confusion *c, int k) {
  int64_t truth = 0, predicted = 0;
  for (int j = 0; j < c->classes; j++) {
    truth += c->counts[(size_t)k * c->classes + j];
    predicted += c->counts[(size_t)j * c->classes + k];
  }
  return class_scores_of(c->counts[(size_t)k * c->classes + k], truth, predicted);
}

class_scores class_scores_of(int64_t true_positive, int64_t truth, int64_t predicted) {
  class_scores s = {true_positive, truth, predicted, 0.0, 0.0, 0.0, 0.0};
  s.precision = s.predicted ? (double)s.true_positive / (double)s.predicted : -1.0;
  s.recall = s.truth ? (double)s.true_positive / (double)s.truth : -1.0;
  s.f1 = f_score(1.0, s.true_positive, s.truth, s.predicted);
  s.f2 = f_score(4.0, s.true_positive, s.truth, s.predicted);
  return s;
}

/* by_row: percentages of each row's sum, else of each column's. */
static void confusion_percent(const confusion *c, double *out, int by_row) {
  int n = c->classes;
  for (int a = 0; a < n; a++) {
    int64_t sum = 0;
    for (int b = 0; b < n; b++)
      sum += by_row ? c->counts[(size_t)a * n + b] : c->counts[(size_t)b * n + a];
    for (int b = 0; b < n; b++) {
      size_t cell = by_row ? (size_t)a * n + b : (size_t)b * n + a;
      out[cell] = sum ? 100.0 * (double)c->counts[cell] / (double)sum : NAN;
    }
  }
}

void confusion_row_percent(const confusion *c, double *out) {
  confusion_percent(c, out, 1);
}

void confusion_column_percent(const confusion *c, double *out) {
  confusion_percent(c, out, 0);
}
