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
  double miou_foreground;   /* mean IoU over classes 1..K-1 present in truth or prediction */
  double miou_all;          /* the same including background (class 0) */
  double mask_iou;          /* IoU of the foreground/background masks (class != 0) */
  int classes_counted;      /* classes entering miou_foreground */
} seg_metrics;

seg_metrics confusion_metrics(const confusion *c);
/* IoU of class k, or -1 when it appears in neither truth nor prediction. */
double confusion_class_iou(const confusion *c, int k);

#endif
