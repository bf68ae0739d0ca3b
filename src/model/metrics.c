#include "metrics.h"

#include <string.h>

#include "check.h"

void confusion_init(confusion *c, int classes) {
  c->classes = classes;
  c->counts = fp_calloc((size_t)classes * classes, sizeof(int64_t));
}

void confusion_free(confusion *c) { free(c->counts); }

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
