/* Adam/AdamW over the model's one contiguous f32 parameter buffer, with the one-cycle
 * learning-rate schedule and gradient-norm clipping, run on the model's backend. */
#ifndef FP_OPTIM_H
#define FP_OPTIM_H

#include "unet.h"

typedef struct schedule_config {
  double max_lr;          /* peak of the one-cycle schedule */
  double warmup_fraction; /* share of total_steps spent warming up */
  long total_steps;
} schedule_config;

/* initial = max/25, final = initial/1e4; linear warm-up from initial to max
 * over round(warmup_fraction*total) steps (at least 1), then cosine to final. */
double one_cycle_lr(const schedule_config *s, long step);

typedef struct optimizer {
  const backend *be;
  adam_config adam;
  schedule_config schedule;
  double clip_norm; /* 0 = no clipping */
  size_t count;
  float *exp_avg, *exp_avg_sq; /* backend memory, layout of the parameter buffer */
  long step;                   /* steps taken so far, over all phases */
  long phase_start;            /* the step at which the schedule and Adam's state started */
} optimizer;

optimizer *optimizer_create(const backend *be, size_t param_count, adam_config adam,
                            schedule_config schedule, double clip_norm);
void optimizer_destroy(optimizer *opt);

/* Starts a new phase of training at the current step: the schedule restarts (one-cycle over
 * `schedule`) and so does Adam (moments zero, bias correction from step 1), as a new
 * torch.optim.AdamW would. */
void optimizer_start_phase(optimizer *opt, schedule_config schedule);

/* Queues one step on the backend: the gradient norm and clip factor
 * (torch.nn.utils.clip_grad_norm_ semantics) into m->scalars, then Adam/AdamW of m->params at
 * the schedule's learning rate, which it returns; both over the parameters backward trains
 * (unet_trained_from: not a frozen encoder's). Reads nothing back: unet_read_scalars gives the
 * step's loss, gradient norm and non-finite flag. Marks the model's weights changed. */
double optimizer_step(optimizer *opt, unet *m);

#endif
