#include "optim.h"

#include <math.h>
#include <string.h>

#include "check.h"
#include "hash.h"

double one_cycle_lr(const schedule_config *s, long step) {
  double initial = s->max_lr / 25.0, final = initial / 1e4;
  long warmup = lround(s->warmup_fraction * (double)s->total_steps);
  if (warmup < 1) warmup = 1;
  if (step < warmup) return initial + (s->max_lr - initial) * (double)step / (double)warmup;
  long decay_steps = s->total_steps - warmup > 1 ? s->total_steps - warmup : 1;
  double progress = (double)(step - warmup) / (double)decay_steps;
  if (progress > 1.0) progress = 1.0;
  return final + (s->max_lr - final) * (1.0 + cos(3.14159265358979323846 * progress)) / 2.0;
}

optimizer *optimizer_create(const backend *be, size_t param_count, adam_config adam,
                            schedule_config schedule, double clip_norm) {
  optimizer *opt = fp_calloc(1, sizeof *opt);
  opt->be = be;
  opt->adam = adam;
  opt->schedule = schedule;
  opt->clip_norm = clip_norm;
  opt->count = param_count;
  opt->scaler = (loss_scaler){.scale = 1.0};
  opt->exp_avg = be->alloc(FP_F32, param_count);
  opt->exp_avg_sq = be->alloc(FP_F32, param_count);
  return opt;
}

void optimizer_destroy(optimizer *opt) {
  if (!opt) return;
  opt->be->release(opt->exp_avg);
  opt->be->release(opt->exp_avg_sq);
  free(opt);
}

void optimizer_start_phase(optimizer *opt, schedule_config schedule) {
  opt->schedule = schedule;
  opt->phase_start = opt->step;
  opt->phase_skipped = 0;
  opt->be->fill_zero(opt->exp_avg, FP_F32, opt->count);
  opt->be->fill_zero(opt->exp_avg_sq, FP_F32, opt->count);
}

double optimizer_prepare_step(optimizer *opt, unet *m) {
  FP_CHECK(m->grads && m->param_list.total == opt->count,
           "optimizer: the model has no gradients or another parameter count");
  double lr = one_cycle_lr(&opt->schedule, opt->step - opt->phase_start);
  opt->step++;
  double adam_step = (double)(opt->step - opt->phase_start - opt->phase_skipped);
  double lr_and_step[2] = {lr, adam_step};
  opt->be->upload(m->scalars + SCALAR_LR, lr_and_step, FP_F64, 2);
  return lr;
}

void optimizer_apply(const optimizer *opt, unet *m) {
  const backend *be = opt->be;
  size_t from = unet_trained_from(m), count = opt->count - from;
  be->gradient_norm(m->grads + from, count, opt->clip_norm, opt->scaler.scale, m->scalars);
  be->adam_update(m->params + from, m->grads + from, opt->exp_avg + from, opt->exp_avg_sq + from,
                  count, &opt->adam, m->scalars);
  unet_weights_changed(m);
  unet_refresh_compute_weights(m);
}

uint64_t optimizer_graph_key(const optimizer *opt, const unet *m) {
  uint64_t parts[3];
  memcpy(&parts[0], &opt->clip_norm, sizeof parts[0]);
  memcpy(&parts[1], &opt->scaler.scale, sizeof parts[1]);
  parts[2] = (uint64_t)unet_trained_from(m);
  return fnv1a64(parts, sizeof parts);
}

double optimizer_step(optimizer *opt, unet *m) {
  double lr = optimizer_prepare_step(opt, m);
  optimizer_apply(opt, m);
  return lr;
}

step_outcome optimizer_finish_step(optimizer *opt, int gradients_finite) {
  loss_scaler *s = &opt->scaler;
  if (gradients_finite) {
    if (s->dynamic && ++s->good_steps >= s->growth_interval) {
      s->scale = fmin(s->scale * 2.0, LOSS_SCALE_MAX);
      s->good_steps = 0;
    }
    return STEP_APPLIED;
  }
  opt->skipped++;
  opt->phase_skipped++;
  if (!s->dynamic || s->scale / 2.0 < LOSS_SCALE_MIN) return STEP_FAILED;
  s->scale /= 2.0;
  s->good_steps = 0;
  return STEP_SKIPPED;
}
