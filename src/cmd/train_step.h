/* One training step of `train` on the backend, queued in one go so that the host can fetch the
 * next batch while the device computes:
 *   train_step_queue: the batch's images from the staging slot they were sent to ahead, its
 *     labels, the loss's normalisation over the global batch (host), then the pass: forward,
 *     loss, argmax, backward (data-parallel all-reduce), optimiser update; recorded once as a
 *     device graph and replayed where the backend and model allow (pass_graph.h), keyed on
 *     every host value the pass hands its ops; the predictions copied back asynchronously.
 *   train_step_wait: waits for it, adds the predictions to the confusion matrix, reads the
 *     step's scalars back.
 * After train_step_queue the host no longer needs the batch (the loader may refill it). */
#ifndef FP_TRAIN_STEP_H
#define FP_TRAIN_STEP_H

#include "data_parallel.h"
#include "loader.h"
#include "metrics.h"
#include "optim.h"
#include "pass_graph.h"
#include "train_loss.h"
#include "unet.h"

typedef struct train_step {
  unet *model;
  optimizer *opt;
  data_parallel *dp; /* NULL on one rank */
  train_loss *loss;
  long dropout_offset;           /* this rank's first image in the global batch */
  size_t pixels;                 /* per batch */
  uint8_t *labels, *predictions; /* backend memory, one batch */
  uint8_t *host_masks;           /* host_alloc: the queued batch's masks, for the confusion */
  uint8_t *host_predictions;     /* host_alloc */
  pass_graph graph;
  long graph_steps; /* steps of this run that replayed (or recorded) a device graph */
} train_step;

/* The step's buffers (labels, the loss spec's, among them); train_step_bind completes it. */
void train_step_init(train_step *s, unet *m, long dropout_offset);
/* Binds the step to the optimiser, the loss and the data-parallel hooks; graphs: the job's
 * train.graphs (pass_graph_init says when they cannot be used). */
void train_step_bind(train_step *s, optimizer *opt, train_loss *loss, data_parallel *dp,
                     int graphs);
void train_step_free(train_step *s);

/* Queues the step over `batch`, its images in staging slot `slot` (stage_input). Returns 1 when
 * any rank asked to stop (stop_requested on this one); *lr receives the step's learning rate. */
int train_step_queue(train_step *s, const loader_batch *batch, int slot, int stop_requested,
                     double *lr);
/* Waits for the queued step: its predictions added to conf, scalars read back. */
void train_step_wait(train_step *s, confusion *conf, double scalars[SCALAR_COUNT]);

#endif
