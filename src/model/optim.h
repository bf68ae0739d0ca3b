/* Adam/AdamW over the model's one contiguous f32 parameter buffer, with the one-cycle
 * learning-rate schedule and gradient-norm clipping, run on the model's backend. */
#ifndef FP_OPTIM_H
#define FP_OPTIM_H

#include <math.h>

#include "unet.h"

typedef struct schedule_config {
  double max_lr;          /* peak of the one-cycle schedule */
  double warmup_fraction; /* share of total_steps spent warming up */
  long total_steps;
} schedule_config;

/* initial = max/25, final = initial/1e4; linear warm-up from initial to max
 * over round(warmup_fraction*total) steps (at least 1), then cosine to final. */
double one_cycle_lr(const schedule_config *s, long step);

/* Loss scaling (mixed precision with fp16 gradients): the losses' gradients are multiplied by
 * `scale`, a power of two, so that small gradients do not flush to zero in fp16; the gradient
 * norm and the update divide it out again, exactly (backend.h gradient_norm). dynamic:
 * torch.cuda.amp.GradScaler's rule: a step whose gradients are not finite is skipped (no update,
 * Adam's step count unchanged) and the scale halved; after `growth_interval` finite steps in a
 * row it doubles, up to LOSS_SCALE_MAX. Not dynamic: the scale stays (1 = no loss scaling). */
typedef struct loss_scaler {
  int dynamic;
  double scale;
  long growth_interval;
  long good_steps; /* finite steps since the scale last changed */
} loss_scaler;

/* Dynamic scaling gives up below LOSS_SCALE_MIN: the gradients are not finite for another
 * reason. It grows no further than LOSS_SCALE_MAX, the largest power of two a float holds
 * (GradScaler has no cap and, once the scale is inf, skips every step after). */
#define LOSS_SCALE_MIN 1.0
#define LOSS_SCALE_MAX 0x1p127

/* A usable loss scale: a power of two (multiplying by it is exact) in [LOSS_SCALE_MIN,
 * LOSS_SCALE_MAX]. Inline: the job-file check uses it without the optimiser (tests/fuzz). */
static inline int loss_scale_valid(double scale) {
  int exponent;
  return scale >= LOSS_SCALE_MIN && scale <= LOSS_SCALE_MAX && frexp(scale, &exponent) == 0.5;
}

typedef struct optimizer {
  const backend *be;
  adam_config adam;
  schedule_config schedule;
  double clip_norm; /* 0 = no clipping */
  size_t count;
  float *exp_avg, *exp_avg_sq; /* backend memory, layout of the parameter buffer */
  long step;                   /* steps taken so far, over all phases */
  long phase_start;            /* the step at which the schedule and Adam's state started */
  loss_scaler scaler;
  long skipped;       /* steps whose update was skipped (non-finite gradients), all phases */
  long phase_skipped; /* of those, the ones since phase_start (not counted by Adam) */
} optimizer;

optimizer *optimizer_create(const backend *be, size_t param_count, adam_config adam,
                            schedule_config schedule, double clip_norm);
void optimizer_destroy(optimizer *opt);

/* Starts a new phase of training at the current step: the schedule restarts (one-cycle over
 * `schedule`) and so does Adam (moments zero, bias correction from step 1), as a new
 * torch.optim.AdamW would. */
void optimizer_start_phase(optimizer *opt, schedule_config schedule);

/* Queues one step on the backend: the gradient norm and clip factor
 * (torch.nn.utils.clip_grad_norm_ semantics, the loss scale divided out) into m->scalars, then
 * Adam/AdamW of m->params at the schedule's learning rate, which it returns; both over the
 * parameters backward trains (unet_trained_from: not a frozen encoder's). The backend skips the
 * update when the gradients are not finite. Reads nothing back: unet_read_scalars gives the
 * step's loss, gradient norm and non-finite flag, which optimizer_finish_step then takes. The
 * model's compute-precision weights are remade from the new ones at once, on the backend.
 * = optimizer_prepare_step, then optimizer_apply. */
double optimizer_step(optimizer *opt, unet *m);
/* The host part: the step count and learning rate, uploaded into m->scalars (SCALAR_LR,
 * SCALAR_STEP); returns the learning rate. */
double optimizer_prepare_step(optimizer *opt, unet *m);
/* The device part, only queued ops (a pass that a device graph can record, pass_graph.h). Its
 * host arguments: the clip norm, the loss scale and unet_trained_from, i.e. optimizer_graph_key. */
void optimizer_apply(const optimizer *opt, unet *m);
uint64_t optimizer_graph_key(const optimizer *opt, const unet *m);

typedef enum step_outcome {
  STEP_APPLIED, /* finite gradients: the update happened */
  STEP_SKIPPED, /* not finite, dynamic loss scaling: no update, the scale halved; go on */
  STEP_FAILED   /* not finite otherwise (or the scale would fall below LOSS_SCALE_MIN) */
} step_outcome;

/* After the step's read-back: counts the step and moves the loss scale (loss_scaler). */
step_outcome optimizer_finish_step(optimizer *opt, int gradients_finite);

#endif
