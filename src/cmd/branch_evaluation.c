#include "branch_evaluation.h"

#include <math.h>
#include <stdlib.h>

#include "branch_targets.h"
#include "check.h"

void branch_evaluation_init(branch_evaluation *e, const unet *m, int ground_truth) {
  FP_CHECK(m->br.mode != BRANCHES_NONE, "branch metrics for a model without branches");
  FP_CHECK(!ground_truth || m->br.mode == BRANCHES_INJECTED,
           "ground-truth injection needs a checkpoint whose branches are injected (attribute "
           "'branches' is %s)",
           branch_mode_name(m->br.mode));
  size_t k = (size_t)m->classes, entries = (size_t)m->batch * k;
  *e = (branch_evaluation){.classes = m->classes, .batch = m->batch, .ground_truth = ground_truth};
  int64_t **counts[] = {&e->true_positive, &e->false_positive, &e->false_negative,
                        &e->true_negative, &e->box_count};
  for (int i = 0; i < 5; i++) *counts[i] = fp_calloc(k, sizeof **counts[i]);
  e->box_iou_sum = fp_calloc(k, sizeof *e->box_iou_sum);
  e->presence = fp_malloc(entries * sizeof *e->presence);
  e->probabilities = fp_malloc(entries * sizeof *e->probabilities);
  e->boxes = fp_malloc(4 * entries * sizeof *e->boxes);
  e->predicted = fp_malloc(4 * entries * sizeof *e->predicted);
  if (!ground_truth) return;
  size_t pixels = (size_t)m->batch * m->height * m->width;
  confusion_init(&e->injected_conf, m->classes);
  e->predictions = m->be->alloc(FP_U8, pixels);
  e->host_predictions = fp_malloc(pixels);
}

void branch_evaluation_free(branch_evaluation *e, const unet *m) {
  void *host[] = {e->true_positive, e->false_positive, e->false_negative,  e->true_negative,
                  e->box_count,     e->box_iou_sum,    e->presence,        e->probabilities,
                  e->boxes,         e->predicted,      e->host_predictions};
  for (size_t i = 0; i < sizeof host / sizeof *host; i++) free(host[i]);
  if (!e->ground_truth) return;
  confusion_free(&e->injected_conf);
  m->be->release(e->predictions);
}

static double box_iou(const float *a, const float *b) {
  double height = fmin(a[2], b[2]) - fmax(a[0], b[0]), width = fmin(a[3], b[3]) - fmax(a[1], b[1]);
  double intersection = height > 0 && width > 0 ? height * width : 0.0;
  double area_a = fmax(a[2] - a[0], 0.0) * fmax(a[3] - a[1], 0.0);
  double area_b = fmax(b[2] - b[0], 0.0) * fmax(b[3] - b[1], 0.0);
  double union_area = area_a + area_b - intersection;
  return union_area > 0 ? intersection / union_area : 0.0;
}

static void score_image(branch_evaluation *e, size_t image) {
  int exact = 1;
  for (int k = 0; k < e->classes; k++) {
    size_t i = image * (size_t)e->classes + (size_t)k;
    int truth = e->presence[i] > 0.5f, predicted = e->probabilities[i] >= 0.5f;
    e->true_positive[k] += truth && predicted;
    e->false_positive[k] += !truth && predicted;
    e->false_negative[k] += truth && !predicted;
    e->true_negative[k] += !truth && !predicted;
    exact &= truth == predicted;
    if (!truth) continue;
    e->box_iou_sum[k] += box_iou(e->predicted + 4 * i, e->boxes + 4 * i);
    e->box_count[k]++;
  }
  e->exact_matches += exact;
  e->images++;
}

void branch_evaluation_batch(branch_evaluation *e, unet *m, const loader_batch *b,
                             int ignore_label) {
  const backend *be = m->be;
  branch_targets_from_masks(b->masks, m->batch, m->height, m->width, m->classes, e->presence,
                            e->boxes);
  be->tensor_to_nchw(&m->br.cls.probabilities, e->probabilities);
  be->tensor_to_nchw(&m->br.box.boxes, e->predicted);
  for (int i = 0; i < b->count; i++) score_image(e, (size_t)i);
  if (!e->ground_truth) return;
  size_t pixels = (size_t)m->batch * m->height * m->width;
  unet_inject_ground_truth(m, e->presence);
  unet_forward(m, 0);
  unet_inject_ground_truth(m, NULL);
  be->argmax_channels(&m->logits, e->predictions, NULL);
  be->download(e->host_predictions, e->predictions, FP_U8, pixels);
  confusion_add(&e->injected_conf, b->masks, e->host_predictions, pixels, ignore_label);
}

static double ratio(double numerator, double denominator) {
  return denominator > 0 ? numerator / denominator : NAN;
}

/* metrics.h's undefined (-1) printed as nan */
static double defined(double score) {
  return score < 0 ? NAN : score;
}

static void report_classes(const branch_evaluation *e, const char *const *names, FILE *out) {
  int64_t tp = 0, fp = 0, fn = 0, tn = 0, boxes = 0;
  double iou = 0.0;
  fprintf(out,
          "per-class presence (class branch) and box IoU (box branch):\n"
          "  %3s %-20s %9s %9s %9s %9s %9s %9s %8s\n",
          "k", "class", "support", "precision", "recall", "f1", "f2", "accuracy", "box_iou");
  for (int k = 0; k < e->classes; k++) {
    int64_t p = e->true_positive[k], f = e->false_positive[k], n = e->false_negative[k],
            t = e->true_negative[k];
    tp += p, fp += f, fn += n, tn += t, boxes += e->box_count[k], iou += e->box_iou_sum[k];
    class_scores s = class_scores_of(p, p + n, p + f);
    fprintf(out, "  %3d %-20s %9lld %9.4f %9.4f %9.4f %9.4f %9.4f %8.4f\n", k, names[k],
            (long long)(p + n), defined(s.precision), defined(s.recall), defined(s.f1),
            defined(s.f2), ratio((double)(p + t), (double)(p + f + n + t)),
            ratio(e->box_iou_sum[k], (double)e->box_count[k]));
  }
  class_scores micro = class_scores_of(tp, tp + fn, tp + fp);
  fprintf(out,
          "class_branch_exact_match %.4f\nclass_branch_label_accuracy %.4f\n"
          "class_branch_micro_precision %.4f\nclass_branch_micro_recall %.4f\n"
          "class_branch_micro_f1 %.4f\nclass_branch_micro_f2 %.4f\nbox_branch_mean_iou %.4f "
          "(%lld present image-class pairs)\n",
          ratio((double)e->exact_matches, (double)e->images),
          ratio((double)(tp + tn), (double)(tp + fp + fn + tn)), defined(micro.precision),
          defined(micro.recall), defined(micro.f1), defined(micro.f2), ratio(iou, (double)boxes),
          (long long)boxes);
}

void branch_evaluation_report(const branch_evaluation *e, const confusion *plain,
                              const char *const *class_names, FILE *out) {
  fprintf(out, "branches: %lld images, presence predicted where the probability >= 0.5\n",
          (long long)e->images);
  report_classes(e, class_names, out);
  if (!e->ground_truth) return;
  seg_metrics without = confusion_metrics(plain), with = confusion_metrics(&e->injected_conf);
  fprintf(out,
          "ground-truth injection (the mask's class presence instead of the class branch's):\n"
          "gt_pixel_accuracy %.4f (%.4f without)\ngt_miou_excluding_background %.4f (%.4f "
          "without)\ngt_miou_including_background %.4f (%.4f without)\n"
          "gt_foreground_mask_iou %.4f (%.4f without)\nper-class IoU without / with:\n",
          with.pixel_accuracy, without.pixel_accuracy, with.miou_foreground,
          without.miou_foreground, with.miou_all, without.miou_all, with.mask_iou,
          without.mask_iou);
  for (int k = 0; k < e->classes; k++) {
    double a = confusion_class_iou(plain, k), b = confusion_class_iou(&e->injected_conf, k);
    if (a >= 0 || b >= 0) fprintf(out, "  %3d %-20s %.4f %.4f\n", k, class_names[k], a, b);
  }
}
