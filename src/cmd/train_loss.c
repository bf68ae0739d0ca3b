#include "train_loss.h"

#include "branch_targets.h"
#include "check.h"

void train_loss_init(train_loss *l, const unet *m, loss_spec spec, const float *host_class_weights,
                     collective *comm, int world_size) {
  *l = (train_loss){.spec = spec,
                    .be = m->be,
                    .host_class_weights = host_class_weights,
                    .comm = comm,
                    .world_size = world_size};
  if (world_size > 1) l->term_scales = m->be->alloc(FP_F32, 2);
  l->spec.term_scales = l->term_scales;
  if (m->br.mode == BRANCHES_NONE) return;
  size_t k = (size_t)m->batch * m->classes;
  l->presence = fp_malloc(k * sizeof *l->presence);
  l->boxes = fp_malloc(4 * k * sizeof *l->boxes);
  l->box_mask = fp_malloc(k * sizeof *l->box_mask);
}

void train_loss_free(train_loss *l) {
  if (l->term_scales) l->be->release(l->term_scales);
  free(l->presence);
  free(l->boxes);
  free(l->box_mask);
}

/* Each rank's cross-entropy is the weighted mean over its own pixels and its box loss the mean
 * over its own present classes; the global batch's are the means over all ranks' pixels and
 * classes, so each rank's gradient is scaled by N x local / global before the gradients are
 * averaged over the N ranks. The class-presence BCE is a mean over images x classes, the same
 * count on every rank: its scale stays 1. */
int train_loss_prepare(train_loss *l, unet *m, const uint8_t *host_masks, const uint8_t *host_tags,
                       const uint8_t *host_tag_only, int stop_requested) {
  size_t pixels = (size_t)m->batch * m->height * m->width;
  l->local_weight = 0.0; /* one rank: no normaliser needed (its scale is then 1) */
  for (size_t i = 0; l->world_size > 1 && i < pixels; i++)
    if (host_masks[i] != l->spec.ignore_label && host_masks[i] < m->classes)
      l->local_weight += l->host_class_weights[host_masks[i]];
  l->local_boxes = 0.0;
  if (m->br.mode != BRANCHES_NONE) {
    size_t present =
        branch_targets_from_batch(host_masks, host_tags, host_tag_only, m->batch, m->height,
                                  m->width, m->classes, l->presence, l->boxes, l->box_mask);
    l->local_boxes = 4.0 * (double)present;
    unet_set_branch_targets(m, l->presence, l->boxes, l->box_mask);
  }
  double sums[3] = {l->local_weight, l->local_boxes, stop_requested ? 1.0 : 0.0};
  if (l->world_size == 1) return stop_requested;
  collective_allreduce_sum_host_doubles(l->comm, sums, 3);
  l->global_weight = sums[0];
  l->global_boxes = sums[1];
  double ranks = l->world_size;
  /* nothing labelled (or no box) anywhere: the term's gradient is zero whatever the scale */
  float scales[2] = {sums[0] > 0.0 ? (float)(ranks * l->local_weight / sums[0]) : 1.0f,
                     sums[1] > 0.0 ? (float)(ranks * l->local_boxes / sums[1]) : 1.0f};
  l->be->upload(l->term_scales, scales, FP_F32, 2);
  return sums[2] > 0.0;
}

step_losses train_loss_global(train_loss *l, const double *scalars) {
  double terms[3] = {scalars[SCALAR_LOSS] * l->local_weight, scalars[SCALAR_CLASS_LOSS],
                     scalars[SCALAR_BOX_LOSS] * l->local_boxes};
  if (l->world_size > 1) collective_allreduce_sum_host_doubles(l->comm, terms, 3);
  step_losses s;
  int one_rank = l->world_size == 1, branches = l->presence != NULL;
  s.segmentation =
      one_rank || !(l->global_weight > 0.0) ? scalars[SCALAR_LOSS] : terms[0] / l->global_weight;
  s.class_loss = branches ? terms[1] / l->world_size : 0.0;
  s.box_loss =
      one_rank || !(l->global_boxes > 0.0) ? scalars[SCALAR_BOX_LOSS] : terms[2] / l->global_boxes;
  if (!branches) s.box_loss = 0.0;
  s.total = unet_total_loss(&l->spec, s.segmentation, s.class_loss, s.box_loss);
  return s;
}
