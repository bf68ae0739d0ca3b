#include "optim.h"

#include <math.h>

#include "check.h"

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
  opt->exp_avg = be->alloc(param_count * sizeof(float));
  opt->exp_avg_sq = be->alloc(param_count * sizeof(float));
  return opt;
}

void optimizer_destroy(optimizer *opt) {
  if (!opt) return;
  opt->be->release(opt->exp_avg);
  opt->be->release(opt->exp_avg_sq);
  free(opt);
}

step_report optimizer_step(optimizer *opt, float *params, float *grads) {
  step_report report;
  report.grad_norm = sqrt(opt->be->sum_of_squares(grads, opt->count));
  if (opt->clip_norm > 0.0 && report.grad_norm > opt->clip_norm)
    opt->be->scale(grads, opt->count, (float)(opt->clip_norm / (report.grad_norm + 1e-6)));
  report.lr = one_cycle_lr(&opt->schedule, opt->step);
  opt->adam.lr = (float)report.lr;
  opt->step++;
  opt->be->adam_update(params, grads, opt->exp_avg, opt->exp_avg_sq, opt->count, &opt->adam,
                       opt->step);
  return report;
}
