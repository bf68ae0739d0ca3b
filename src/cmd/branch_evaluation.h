/* evaluate's metrics of the Extended U-Net's branches: the class branch as a multilabel
 * classifier (threshold 0.5 on its probabilities; truth = the classes present in the mask),
 * the box branch by the IoU of its boxes with the mask's, and (ground-truth injection) the
 * segmentation again with the true class presence injected instead of the branch's output. */
#ifndef FP_BRANCH_EVALUATION_H
#define FP_BRANCH_EVALUATION_H

#include <stdint.h>
#include <stdio.h>

#include "loader.h"
#include "metrics.h"
#include "unet.h"

typedef struct branch_evaluation {
  int classes, batch;
  int64_t *true_positive, *false_positive, *false_negative, *true_negative; /* [classes] */
  int64_t exact_matches, images;
  double *box_iou_sum; /* [classes]: over the images where the class is present */
  int64_t *box_count;
  float *presence, *boxes;          /* host: the batch's targets */
  float *probabilities, *predicted; /* host: the branches' outputs */
  int ground_truth;                 /* injected branches: also run with the truth injected */
  confusion injected_conf;          /* the segmentation with the truth injected */
  uint8_t *predictions, *host_predictions;
} branch_evaluation;

void branch_evaluation_init(branch_evaluation *e, const unet *m, int ground_truth);
void branch_evaluation_free(branch_evaluation *e, const unet *m);
/* After unet_forward on the batch: scores the branches' outputs; with ground_truth, runs the
 * model again with the batch's true presence injected and adds its predictions. */
void branch_evaluation_batch(branch_evaluation *e, unet *m, const loader_batch *b,
                             int ignore_label);
/* Prints the metrics (and, with ground truth, the segmentation metrics next to `plain`'s). */
void branch_evaluation_report(const branch_evaluation *e, const confusion *plain,
                              const char *const *class_names, FILE *out);

#endif
