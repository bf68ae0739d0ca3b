/* The training step's loss over the global batch: the targets of the Extended U-Net's branches
 * from the batch's masks, each term's normalisation over all ranks, and the global values of
 * the terms once the step's scalars are read back. */
#ifndef FP_TRAIN_LOSS_H
#define FP_TRAIN_LOSS_H

#include "collective.h"
#include "unet.h"

typedef struct train_loss {
  loss_spec spec; /* spec.term_scales: term_scales on several ranks, else NULL */
  const backend *be;
  float *term_scales; /* backend memory, f32 [2], uploaded each step (several ranks) */
  const float *host_class_weights;
  collective *comm;
  int world_size;
  float *presence, *boxes, *box_mask; /* host, one batch of branch targets */
  double local_weight, global_weight; /* cross-entropy: sums of labelled pixels' class weights */
  double local_boxes, global_boxes;   /* box loss: coordinates of present classes */
} train_loss;

typedef struct step_losses {
  double total, segmentation, class_loss, box_loss; /* over the global batch */
} step_losses;

void train_loss_init(train_loss *l, const unet *m, loss_spec spec, const float *host_class_weights,
                     collective *comm, int world_size);
void train_loss_free(train_loss *l);
/* Before unet_loss: uploads the branch targets of the batch (host masks [batch,H,W]; tags
 * [batch,K] and tag_only [batch] of tag-only images, or NULL: branch_targets_from_batch), sets
 * the scales so that the averaged gradients are those of the global batch's loss, and tells
 * every rank whether any asked to stop (the same small all-reduce). Returns that. */
int train_loss_prepare(train_loss *l, unet *m, const uint8_t *host_masks, const uint8_t *host_tags,
                       const uint8_t *host_tag_only, int stop_requested);
/* The global batch's terms from this rank's read-back scalars (an all-reduce on several ranks). */
step_losses train_loss_global(train_loss *l, const double *scalars);

#endif
