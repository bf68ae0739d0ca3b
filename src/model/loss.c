/* The training loss: weighted cross-entropy over pixels, plus, with the Extended U-Net's
 * branches, the class-presence BCE and the box smooth-L1 (the compound loss of the paper:
 * CE + w_cls x BCE + w_box x smooth-L1, w_box = 75 there). */
#include "check.h"
#include "optim.h"
#include "unet.h"

void unet_loss(unet *m, const loss_spec *spec, int gradients) {
  FP_CHECK(!gradients || m->mode == UNET_TRAINING, "unet_loss: gradients on an inference model");
  const backend *be = m->be;
  /* a power of two: multiplying by it is exact, so it changes no rounding of the terms */
  const float scale = spec->loss_scale;
  FP_CHECK(loss_scale_valid(scale), "unet_loss: loss scale %g is not a power of two in [%g, %g]",
           (double)scale, LOSS_SCALE_MIN, LOSS_SCALE_MAX);
  const float *term_scales = spec->term_scales;
  be->softmax_cross_entropy(&m->logits, spec->labels, spec->class_weights, spec->ignore_label,
                            scale, term_scales, gradients ? &m->grad_logits : NULL, m->scalars);
  branches *b = &m->br;
  if (b->mode == BRANCHES_NONE) return;
  be->sigmoid_bce(&b->cls.logits, b->target_presence, spec->class_loss_weight * scale,
                  gradients ? &b->cls.grad_logits : NULL, m->scalars);
  be->sigmoid_smooth_l1(&b->box.logits, b->target_boxes, b->target_box_mask,
                        spec->box_loss_weight * scale, term_scales ? term_scales + 1 : NULL,
                        gradients ? &b->box.grad_logits : NULL, m->scalars);
}

double unet_total_loss(const loss_spec *spec, double segmentation, double class_loss,
                       double box_loss) {
  return segmentation + spec->class_loss_weight * class_loss + spec->box_loss_weight * box_loss;
}
