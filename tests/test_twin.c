/* Compares the C engine against the PyTorch twin's dump (tests/twin/unet_twin.py):
 * forward output, loss, every gradient, and parameters, BN running statistics
 * and losses after several optimiser steps on the same weights and inputs.
 * Error per tensor: max|c - torch| / max|torch|.
 *
 * The dump is an HDF5 file or a tensor directory (DUMP.twin/), read through twin_dump.h.
 *
 * test_twin DUMP               f32: fixed tolerances against the float64 twin.
 * test_twin DUMP bf16          bf16 mixed precision, against the same float64 twin. bf16 keeps 8
 *   significant bits, and at initialisation the network amplifies rounding (rounding the
 *   weights alone to bf16 moves early-layer gradients by ~50%, tests/twin/README.md), so no
 *   fixed tolerance fits. The dump's /peer_bf16 holds what PyTorch's own bf16 autocast computes
 *   from the same weights and inputs; C is judged by how far each tensor is from the float64
 *   answer compared with how far PyTorch bf16 is:
 *   - per tensor, error <= PEER_FACTOR x PyTorch's error + BF16_FLOOR (2^-6: eight bf16 unit
 *     roundoffs, for tensors where PyTorch happens to be nearly exact), which catches a tensor
 *     that is plainly wrong;
 *   - over each group of at least MEAN_MIN_TENSORS tensors (gradients; state after the steps),
 *     the geometric mean of C's error / PyTorch's error <= MEAN_RATIO, which catches C being
 *     systematically less exact than PyTorch's autocast. (Seeds 1-4 at r18 64x64 gave 0.96-1.04
 *     for gradients and 0.98-1.03 after steps.)
 * test_twin DUMP fp16          fp16 mixed precision (GPUs), by the same two rules against the
 * dump's /peer_fp16 (PyTorch's float16 autocast), with FP16_FLOOR = BF16_FLOOR / 8 (fp16 keeps 3
 *   more significant bits) and ZERO_BOUND_F16 likewise.
 * Where the peer's group has a loss_scale (fp16 dumps, a power of two, as fp16 training uses),
 * both sides scale the loss by it and divide the gradients by it: the compared gradients are
 * the true ones.
 * test_twin DUMP f32-peer      f32, judged against the dump's /peer_f32 (PyTorch in plain float32)
 *   by the same two rules, with F32_PEER_FLOOR as the floor: for models and sizes where float32
 *   itself cannot reach the fixed tolerances on every tensor. Measured (tests/twin/README.md):
 *   PyTorch float32's worst gradient is 1.2e-1 from float64's for VGG19-BN at 64x64 and 1.7e-2
 *   for ResNet18 at 128x128, on tensors that differ from engine to engine and seed to seed, as
 *   one would expect of rounding amplified where backward nearly cancels.
 * In every mode a tensor that is zero in exact arithmetic (max |float64| < ZERO_REFERENCE, e.g.
 * the gradient of a conv bias that batch norm follows) is not compared relatively (that would
 * compare rounding noise with rounding noise) but must stay below an absolute bound. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "branch_targets.h"
#include "check.h"
#include "optim.h"
#include "test_backend.h"
#include "twin_dump.h"
#include "unet.h"

static const double forward_tolerance = 1e-4;
static const double gradient_tolerance = 1e-3;
static const double step_tolerance = 1e-3;
#define PEER_FACTOR 4.0
#define BF16_FLOOR (1.0 / 64.0)
#define MEAN_RATIO 1.5
#define MEAN_MIN_TENSORS 10
#define F32_PEER_FLOOR 3e-2
/* f32-peer dumps start where no ReLU input is near 0 (tests/twin/kinks.py). There PyTorch's CPU
 * batch norm, which sums in double, is more exact than oneDNN's float32 one where backward
 * cancels (batch norm over a batch of 2 in the class branch, VGG-BN at 128x128): measured C /
 * PyTorch f32 gradient error ratios, geometric mean, 1.67 (vgg16_bn), 3.03 (r18 extended),
 * 2.42 (branches trained), the same with oneDNN held to AVX as on AVX2. */
#define F32_PEER_MEAN_RATIO 4.0
#define ZERO_REFERENCE 1e-10
/* the gradient_norm op against the norm of its input in double: float32 rounding of the sums */
#define GRAD_NORM_SELF_TOLERANCE 1e-5
#define ZERO_BOUND_F32 1e-5
#define ZERO_BOUND_BF16 1e-3
#define FP16_FLOOR (BF16_FLOOR / 8.0)
#define ZERO_BOUND_F16 (ZERO_BOUND_BF16 / 8.0)

/* How a run is judged (the modes above). */
typedef struct twin_mode {
  const char *name; /* the command-line word */
  fp_dtype compute;
  const char *peer;      /* the peer's group in the dump ("peer_bf16/"); NULL: fixed tolerances */
  const char *peer_name; /* for the report */
  double peer_floor, zero_bound;
  double mean_ratio; /* the geometric mean's bound (against a peer) */
} twin_mode;

static const twin_mode modes[] = {
    {"f32", FP_F32, NULL, NULL, 0.0, ZERO_BOUND_F32, 0.0},
    {"f32-peer", FP_F32, "peer_f32/", "PyTorch f32", F32_PEER_FLOOR, ZERO_BOUND_F32,
     F32_PEER_MEAN_RATIO},
    {"bf16", FP_BF16, "peer_bf16/", "PyTorch bf16", BF16_FLOOR, ZERO_BOUND_BF16, MEAN_RATIO},
    {"fp16", FP_F16, "peer_fp16/", "PyTorch fp16", FP16_FLOOR, ZERO_BOUND_F16, MEAN_RATIO},
};

typedef struct comparison {
  const char *what;
  double tolerance; /* f32 */
  int against_peer; /* per tensor, PEER_FACTOR * peer error + peer_floor */
  double peer_floor;
  const char *peer_name; /* "PyTorch bf16", "PyTorch f32" */
  double zero_bound;     /* for tensors zero in exact arithmetic: max |C| */
  int zero_count;
  double worst_error, worst_peer;
  char worst_name[128];
  int failures, count;
  double log_ratio_sum; /* of error / peer error (against a peer) */
  double mean_ratio;    /* its geometric mean's bound */
  /* over every element compared: sum (peer - reference)^2 and sum reference^2 (with a peer) */
  double peer_distance_sq, reference_sq;
} comparison;

static double max_abs(const float *x, size_t count) {
  double largest = 0.0;
  for (size_t i = 0; i < count; i++)
    if (!(fabs(x[i]) <= largest)) largest = fabs(x[i]); /* NaN counts as largest */
  return largest;
}

static double relative_error(const float *got, const float *want, size_t count) {
  double max_diff = 0.0, max_want = 0.0;
  for (size_t i = 0; i < count; i++) {
    double diff = fabs((double)got[i] - want[i]);
    if (!(diff <= max_diff)) max_diff = diff; /* NaN counts as worst */
    if (fabs(want[i]) > max_want) max_want = fabs(want[i]);
  }
  return max_diff / (max_want > 1e-20 ? max_want : 1e-20);
}

/* One tensor's (or scalar's) error against its tolerance: error and peer_error are relative
 * to the reference (the peer's error 0 without a peer). */
static void judge(comparison *c, const char *name, double error, double peer_error) {
  double tolerance = c->against_peer ? PEER_FACTOR * peer_error + c->peer_floor : c->tolerance;
  c->count++;
  if (c->against_peer) /* both floored at 2^-24, f32's unit roundoff */
    c->log_ratio_sum += log(fmax(error, 0x1p-24) / fmax(peer_error, 0x1p-24));
  if (!(error <= tolerance)) {
    c->failures++;
    printf("  FAIL %-55s rel error %.3e > %.2e", name, error, tolerance);
    if (c->against_peer) printf(" (%s: %.3e)", c->peer_name, peer_error);
    printf("\n");
  }
  if (!(error <= c->worst_error)) {
    c->worst_error = error;
    c->worst_peer = peer_error;
    snprintf(c->worst_name, sizeof c->worst_name, "%s", name);
  }
}

/* peer: the peer's values of the same tensor (against a peer), else NULL */
static void compare(comparison *c, const char *name, const float *got, const float *want,
                    const float *peer, size_t count) {
  if (peer)
    for (size_t i = 0; i < count; i++) {
      double diff = (double)peer[i] - want[i];
      c->peer_distance_sq += diff * diff;
      c->reference_sq += (double)want[i] * want[i];
    }
  if (max_abs(want, count) < ZERO_REFERENCE) {
    double largest = max_abs(got, count);
    c->zero_count++;
    if (!(largest <= c->zero_bound)) {
      c->failures++;
      printf("  FAIL %-55s zero in exact arithmetic: max |C| %.3e > %.0e\n", name, largest,
             c->zero_bound);
    }
    return;
  }
  judge(c, name, relative_error(got, want, count), peer ? relative_error(peer, want, count) : 0.0);
}

static int report(comparison *c) {
  if (c->against_peer) {
    double mean_ratio = exp(c->log_ratio_sum / c->count);
    if (c->count >= MEAN_MIN_TENSORS && !(mean_ratio <= c->mean_ratio)) c->failures++;
    printf("%-28s worst %.3e (%s; %s %.3e there); C/PyTorch error ratio, geometric "
           "mean over %d tensors, %.2f (<= %.1f%s): %s\n",
           c->what, c->worst_error, c->worst_name, c->peer_name, c->worst_peer, c->count,
           mean_ratio, c->mean_ratio,
           c->count >= MEAN_MIN_TENSORS ? "" : ", not judged over so few",
           c->failures ? "FAIL" : "ok");
  } else {
    printf("%-28s worst %.3e (%s), tolerance %.0e: %s\n", c->what, c->worst_error, c->worst_name,
           c->tolerance, c->failures ? "FAIL" : "ok");
  }
  if (c->zero_count)
    printf("%-28s %d tensors zero in exact arithmetic, each within %.0e of 0\n", "", c->zero_count,
           c->zero_bound);
  return c->failures;
}

typedef struct twin_file {
  twin_dump *dump;
  const char *path;
  const char *peer;  /* the mode's peer group, or NULL */
  double loss_scale; /* the loss's gradients are this times the true ones (1: no scaling) */
} twin_file;

/* The reference's group/name, and the peer's if there is one. */
static void read_pair(const twin_file *f, const char *name, float *want, float *peer,
                      size_t count) {
  FP_CHECK(twin_dump_read_floats(f->dump, name, want, count) == 0, "%s: no /%s", f->path, name);
  if (!f->peer) return;
  char peer_name[256];
  snprintf(peer_name, sizeof peer_name, "%s%s", f->peer, name);
  FP_CHECK(twin_dump_read_floats(f->dump, peer_name, peer, count) == 0,
           "%s: no /%s (make the dump with --bf16-peer, --fp16-peer or --f32-peer)", f->path,
           peer_name);
}

/* Parameters after several Adam steps against the float64 twin (fixed-tolerance modes). From the
 * second step on, a ReLU input within rounding of 0 is a coin toss between float32 and float64
 * (the twin keeps them away from 0 at the first forward only, tests/twin/kinks.py), and Adam
 * normalises each update to about lr, so a few elements legitimately end up to ~2 x sum(lr)
 * apart (tests/twin/README.md measured 1.5-1.8 x sum(lr)) while the rest agree to rounding.
 * So per element: within STEP_ROUND x max|tensor| (rounding), or a flip, which must stay
 * within STEP_FLIP_LRS x sum(lr); and flips must be rare, at most STEP_FLIP_SHARE of all
 * parameters. A wrong optimiser (lr, decay, bias correction, clipping) moves most elements. */
#define STEP_ROUND 1e-3
#define STEP_FLIP_LRS 2.5
#define STEP_FLIP_SHARE 0.001
static int compare_params_after_steps(const twin_file *f, const tensor_list *list, const float *got,
                                      double lr_sum) {
  float *want = fp_malloc(list->total * sizeof *want);
  twin_dump_read_tensor_list(f->dump, "after/params", list, want);
  size_t flips = 0, beyond = 0;
  double worst_flip = 0.0;
  const char *worst_name = "-";
  for (int i = 0; i < list->count; i++) {
    const named_tensor *t = &list->items[i];
    const float *g = got + t->offset, *w = want + t->offset;
    double rounding = STEP_ROUND * max_abs(w, t->count);
    for (size_t k = 0; k < t->count; k++) {
      double diff = fabs((double)g[k] - w[k]);
      if (diff <= rounding) continue;
      flips++;
      if (!(diff <= STEP_FLIP_LRS * lr_sum)) beyond++;
      if (!(diff / lr_sum <= worst_flip)) worst_flip = diff / lr_sum, worst_name = t->name;
    }
  }
  double share = (double)flips / (double)list->total;
  int failed = beyond > 0 || !(share <= STEP_FLIP_SHARE);
  printf("%-28s %zu of %zu elements beyond %.0e x max|tensor| (%.3f%%, at most %.1f%%), the "
         "worst %.2f x sum(lr) (%s, at most %.1f): %s\n",
         "parameters after the steps", flips, list->total, STEP_ROUND, 100.0 * share,
         100.0 * STEP_FLIP_SHARE, worst_flip, worst_name, STEP_FLIP_LRS, failed ? "FAIL" : "ok");
  free(want);
  return failed;
}

static void compare_list(comparison *c, const twin_file *f, const char *group,
                         const tensor_list *list, const float *got) {
  float *want = fp_malloc(list->total * sizeof *want), *peer = NULL;
  twin_dump_read_tensor_list(f->dump, group, list, want);
  if (f->peer) {
    char peer_group[256];
    snprintf(peer_group, sizeof peer_group, "%s%s", f->peer, group);
    peer = fp_malloc(list->total * sizeof *peer);
    twin_dump_read_tensor_list(f->dump, peer_group, list, peer);
  }
  for (int i = 0; i < list->count; i++) {
    const named_tensor *t = &list->items[i];
    compare(c, t->name, got + t->offset, want + t->offset, peer ? peer + t->offset : NULL,
            t->count);
  }
  free(want);
  free(peer);
}

typedef struct batch {
  loss_spec spec;  /* labels and class weights in backend memory */
  uint8_t *labels; /* host */
} batch;

/* The compound loss of the model's first forward at optimiser step `step` (the dropout draw). */
static double loss_of_batch(unet *m, const batch *b, long step) {
  if (m->br.mode != BRANCHES_NONE) {
    size_t k = (size_t)m->batch * m->classes;
    float *presence = fp_malloc(5 * k * sizeof *presence), *boxes = presence + k;
    branch_targets_from_masks(b->labels, m->batch, m->height, m->width, m->classes, presence,
                              boxes);
    unet_set_branch_targets(m, presence, boxes, NULL);
    free(presence);
  }
  unet_set_dropout_draw(m, (uint64_t)step, 0);
  unet_forward(m, 1);
  unet_loss(m, &b->spec, 1);
  double scalars[SCALAR_COUNT];
  unet_read_scalars(m, scalars);
  return unet_total_loss(&b->spec, scalars[SCALAR_LOSS], scalars[SCALAR_CLASS_LOSS],
                         scalars[SCALAR_BOX_LOSS]);
}

static batch upload_batch(const backend *be, const twin_file *f, const unet *m) {
  size_t pixels = (size_t)m->batch * m->height * m->width;
  uint8_t *labels = fp_malloc(pixels);
  float *class_weights = fp_malloc((size_t)m->classes * sizeof *class_weights);
  FP_CHECK(twin_dump_read_floats(f->dump, "class_weights", class_weights, (size_t)m->classes) == 0,
           "%s: no /class_weights", f->path);
  FP_CHECK(twin_dump_read_u8(f->dump, "labels", labels, pixels) == 0, "%s: no /labels", f->path);
  batch b = {
      .labels = labels,
      .spec = {.labels = be->alloc(FP_U8, pixels),
               .class_weights = be->alloc(FP_F32, (size_t)m->classes),
               .ignore_label = 255,
               .class_loss_weight = (float)twin_dump_attr_double(f->dump, "class_loss_weight"),
               .box_loss_weight = (float)twin_dump_attr_double(f->dump, "box_loss_weight"),
               .loss_scale = (float)f->loss_scale}};
  be->upload((void *)b.spec.labels, labels, FP_U8, pixels);
  be->upload((void *)b.spec.class_weights, class_weights, FP_F32, (size_t)m->classes);
  free(class_weights);
  return b;
}

static void release_batch(const backend *be, batch *b) {
  be->release((void *)b->spec.labels);
  be->release((void *)b->spec.class_weights);
  free(b->labels);
}

/* Model at the dump's initial weights and buffers. */
static unet *twin_model(const backend *be, const twin_file *f, fp_dtype compute) {
  char arch_name[16];
  twin_dump_attr_string(f->dump, "arch", arch_name, sizeof arch_name);
  unet_arch arch;
  FP_CHECK(unet_arch_parse(arch_name, &arch) == 0, "%s: unknown arch %s", f->path, arch_name);
  char branches[16];
  twin_dump_attr_string(f->dump, "branches", branches, sizeof branches);
  branch_config branch = {.inject_blocks = (unsigned)twin_dump_attr_long(f->dump, "inject_blocks"),
                          .dropout = (float)twin_dump_attr_double(f->dump, "branch_dropout")};
  FP_CHECK(branch_mode_parse(branches, &branch.mode) == 0, "%s: branches '%s'", f->path, branches);
  unet_config config = {.arch = arch,
                        .classes = (int)twin_dump_attr_long(f->dump, "classes"),
                        .batch = (int)twin_dump_attr_long(f->dump, "batch"),
                        .height = (int)twin_dump_attr_long(f->dump, "height"),
                        .width = (int)twin_dump_attr_long(f->dump, "width"),
                        .compute = compute,
                        .mode = UNET_TRAINING,
                        .branches = branch};
  /* the seed draws the branches' dropout as the twin does; the weights come from the dump */
  unet *m = unet_create(be, &config, (uint64_t)twin_dump_attr_long(f->dump, "seed"));
  unet_freeze_encoder(m, (int)twin_dump_attr_long(f->dump, "freeze_encoder"));
  float *params = fp_malloc(m->param_list.total * sizeof *params);
  float *buffers = fp_malloc(m->buffer_list.total * sizeof *buffers);
  twin_dump_read_tensor_list(f->dump, "params", &m->param_list, params);
  twin_dump_read_tensor_list(f->dump, "buffers", &m->buffer_list, buffers);
  be->upload(m->params, params, FP_F32, m->param_list.total);
  be->upload(m->buffers, buffers, FP_F32, m->buffer_list.total);
  unet_weights_changed(m);
  float *input = fp_malloc(tensor_count(&m->input) * sizeof *input);
  FP_CHECK(twin_dump_read_floats(f->dump, "input", input, tensor_count(&m->input)) == 0,
           "%s: no /input", f->path);
  be->tensor_from_nchw(&m->input, input);
  free(input);
  free(params);
  free(buffers);
  printf("twin %s: %s %dx%d batch %d, %d classes, %s, branches %s (blocks 0x%x)\n", f->path,
         arch_name, config.height, config.width, config.batch, config.classes,
         fp_dtype_name(compute), branches, branch.inject_blocks);
  return m;
}

static optimizer *twin_optimizer(const backend *be, const twin_file *f, const unet *m) {
  char optimizer_name[16];
  twin_dump_attr_string(f->dump, "optimizer", optimizer_name, sizeof optimizer_name);
  adam_config adam = {.beta1 = (float)twin_dump_attr_double(f->dump, "beta1"),
                      .beta2 = (float)twin_dump_attr_double(f->dump, "beta2"),
                      .eps = (float)twin_dump_attr_double(f->dump, "eps"),
                      .weight_decay = (float)twin_dump_attr_double(f->dump, "weight_decay"),
                      .decoupled_weight_decay = strcmp(optimizer_name, "adam") != 0};
  schedule_config schedule = {twin_dump_attr_double(f->dump, "max_lr"),
                              twin_dump_attr_double(f->dump, "warmup_fraction"),
                              twin_dump_attr_long(f->dump, "total_steps")};
  return optimizer_create(be, m->param_list.total, adam, schedule,
                          twin_dump_attr_double(f->dump, "clip_norm"));
}

/* The branches' logits (class presence, boxes), when the model has them. */
static void compare_branch_outputs(const twin_file *f, const unet *m, comparison *forward) {
  if (m->br.mode == BRANCHES_NONE) return;
  const tensor *outputs[] = {&m->br.cls.logits, &m->br.box.logits};
  const char *names[] = {"class_logits", "box_logits"};
  for (int i = 0; i < 2; i++) {
    size_t count = tensor_count(outputs[i]);
    float *got = fp_malloc(3 * count * sizeof *got), *want = got + count, *peer = got + 2 * count;
    read_pair(f, names[i], want, peer, count);
    m->be->tensor_to_nchw(outputs[i], got);
    compare(forward, names[i], got, want, f->peer ? peer : NULL, count);
    free(got);
  }
}

/* The gradient norm: the backend's gradient_norm op against the norm of the gradients it was
 * given (computed here in double: the op's own arithmetic, tightly, loss scale included), then
 * against the reference like any tensor. Against a peer, any gradient vector within the peer's
 * own L2 distance of the reference may have a norm that far off (triangle inequality), so the
 * peer's error there is at least that distance: one draw of the peer's norm alone is no bound
 * in 16 bits, where a few tensors' noise dominates the norm (ReLU and max-pool ties at the
 * stem): PyTorch's norm lands within 5e-4 of float64's by chance on one starting point and
 * 1.3e-2 off on the next (ResNet34 fp16, seeds 1 to 3; C 5e-3 to 8e-3). */
static void judge_gradient_norm(comparison *gradients, float got, float want, const float *peer,
                                const float *grads, size_t count) {
  double sum = 0.0;
  for (size_t i = 0; i < count; i++) sum += (double)grads[i] * grads[i];
  const float own_norm = (float)sqrt(sum);
  double own = relative_error(&got, &own_norm, 1);
  int own_ok = own <= GRAD_NORM_SELF_TOLERANCE;
  printf("grad_norm: C %.7g (its gradients' norm %.7g: rel %.1e, at most %.0e%s)", (double)got,
         (double)own_norm, own, GRAD_NORM_SELF_TOLERANCE, own_ok ? "" : ": FAIL");
  if (!own_ok) gradients->failures++;
  double error = relative_error(&got, &want, 1);
  if (!peer) {
    printf("  reference %.7g\n", (double)want);
    judge(gradients, "grad_norm", error, 0.0);
    return;
  }
  double peer_error = relative_error(peer, &want, 1);
  double distance = sqrt(gradients->peer_distance_sq / fmax(gradients->reference_sq, 1e-40));
  printf("  %s %.7g  reference %.7g; %s's gradients at L2 distance %.2e of the reference's\n",
         gradients->peer_name, (double)*peer, (double)want, gradients->peer_name, distance);
  judge(gradients, "grad_norm", error, fmax(peer_error, distance));
}

/* Forward output, loss, every gradient and the gradient norm of the first pass. */
static int check_first_pass(const twin_file *f, unet *m, const batch *b, comparison *forward,
                            comparison *gradients) {
  const backend *be = m->be;
  size_t logit_count = tensor_count(&m->logits);
  float *want = fp_malloc(logit_count * sizeof *want),
        *peer = fp_malloc(logit_count * sizeof *peer);
  float *got = fp_malloc(logit_count * sizeof *got);
  float want_scalars[2], peer_scalars[2], got_scalars[2];
  read_pair(f, "output", want, peer, logit_count);
  read_pair(f, "loss", &want_scalars[0], &peer_scalars[0], 1);
  read_pair(f, "grad_norm", &want_scalars[1], &peer_scalars[1], 1);
  got_scalars[0] = (float)loss_of_batch(m, b, 0);
  be->tensor_to_nchw(&m->logits, got);
  compare(forward, "output", got, want, f->peer ? peer : NULL, logit_count);
  compare_branch_outputs(f, m, forward);
  compare(forward, "loss", &got_scalars[0], &want_scalars[0], f->peer ? &peer_scalars[0] : NULL, 1);
  printf("loss: C %.7f  PyTorch %.7f\n", got_scalars[0], want_scalars[0]);
  int failures = report(forward);

  unet_backward(m);
  float *grads = fp_malloc(m->param_list.total * sizeof *grads);
  be->download(grads, m->grads, FP_F32, m->param_list.total);
  for (size_t i = 0; i < m->param_list.total; i++) grads[i] /= (float)f->loss_scale; /* exact */
  /* the tensors backward trains (a frozen encoder's have no gradient, in the dump either) */
  size_t from = unet_trained_from(m);
  tensor_list trained = m->param_list;
  while (trained.count > 0 && trained.items->offset < from) trained.items++, trained.count--;
  compare_list(gradients, f, "grads", &trained, grads);
  be->gradient_norm(m->grads + from, m->param_list.total - from, 0.0, f->loss_scale, m->scalars);
  double scalars[SCALAR_COUNT];
  unet_read_scalars(m, scalars);
  got_scalars[1] = (float)scalars[SCALAR_GRAD_NORM];
  judge_gradient_norm(gradients, got_scalars[1], want_scalars[1], f->peer ? &peer_scalars[1] : NULL,
                      grads + from, m->param_list.total - from);
  failures += report(gradients);
  free(want);
  free(peer);
  free(got);
  free(grads);
  return failures;
}

/* Optimiser steps from the initial state, the same batch each step. */
/* A frozen encoder's parameters after the steps are its initial ones, bit for bit. */
static int check_frozen_unchanged(const twin_file *f, const unet *m, const float *after) {
  if (!m->encoder_frozen) return 0;
  float *initial = fp_malloc(m->param_list.total * sizeof *initial);
  twin_dump_read_tensor_list(f->dump, "params", &m->param_list, initial);
  size_t changed = 0;
  for (size_t i = 0; i < m->encoder_params; i++) changed += initial[i] != after[i];
  printf("frozen encoder: %zu of %zu parameters changed by the steps: %s\n", changed,
         m->encoder_params, changed ? "FAIL" : "ok");
  free(initial);
  return changed != 0;
}

static int check_steps(const twin_file *f, unet *m, const batch *b, comparison *stepped) {
  const backend *be = m->be;
  long steps = twin_dump_attr_long(f->dump, "steps");
  optimizer *opt = twin_optimizer(be, f, m);
  opt->scaler = (loss_scaler){.scale = f->loss_scale}; /* fixed: no step may be skipped */
  size_t n = (size_t)steps;
  float *want = fp_calloc(4 * n + 4, sizeof *want);
  float *want_losses = want, *peer_losses = want + n, *want_lrs = want + 2 * n, *got = want + 3 * n;
  float *peer_lrs = fp_calloc(n + 1, sizeof *peer_lrs),
        *got_lrs = fp_calloc(n + 1, sizeof *got_lrs);
  if (steps > 0) {
    read_pair(f, "after/losses", want_losses, peer_losses, n);
    read_pair(f, "after/lrs", want_lrs, peer_lrs, n);
  }
  for (long s = 0; s < steps; s++) {
    got[s] = (float)loss_of_batch(m, b, s);
    unet_backward(m);
    got_lrs[s] = (float)optimizer_step(opt, m);
    printf("step %ld: loss C %.7f PyTorch %.7f, lr C %.6e PyTorch %.6e\n", s, got[s],
           want_losses[s], got_lrs[s], want_lrs[s]);
  }
  int failures = 0;
  if (steps > 0) {
    compare(stepped, "losses", got, want_losses, f->peer ? peer_losses : NULL, n);
    compare(stepped, "lrs", got_lrs, want_lrs, f->peer ? peer_lrs : NULL, n);
    float *params = fp_malloc(m->param_list.total * sizeof *params);
    float *buffers = fp_malloc(m->buffer_list.total * sizeof *buffers);
    be->download(params, m->params, FP_F32, m->param_list.total);
    be->download(buffers, m->buffers, FP_F32, m->buffer_list.total);
    if (f->peer) {
      compare_list(stepped, f, "after/params", &m->param_list, params);
    } else {
      double lr_sum = 0.0;
      for (size_t s = 0; s < n; s++) lr_sum += want_lrs[s];
      failures += compare_params_after_steps(f, &m->param_list, params, lr_sum);
    }
    failures += check_frozen_unchanged(f, m, params);
    compare_list(stepped, f, "after/buffers", &m->buffer_list, buffers);
    failures += report(stepped);
    free(params);
    free(buffers);
  }
  free(want);
  free(peer_lrs);
  free(got_lrs);
  optimizer_destroy(opt);
  return failures;
}

/* test_twin --needed MODE: 0 when a backend here (cpu, or cuda with a GPU visible) computes in
 * MODE's precision, so a test of that mode will run; else 77 with the reasons. What the twin's
 * generator asks before it spends a minute on a reference that every test would skip. */
static int needed(fp_dtype compute, const char *mode) {
  const char *names[] = {"cpu", "cuda"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    char why[256];
    const backend *be = backend_open(names[i], why, sizeof why);
    if (be && be->dtype_support(compute, why, sizeof why) != DTYPE_NOT_NATIVE) {
      printf("%s twins run on the %s backend here\n", mode, names[i]);
      return 0;
    }
    printf("%s: %s\n", names[i], why);
  }
  printf("no backend here runs %s twins: skipped\n", mode);
  return 77;
}

int main(int argc, char **argv) {
  const int probe = argc == 3 && !strcmp(argv[1], "--needed");
  const char *word = probe || argc == 3 ? argv[2] : "f32";
  const twin_mode *mode = NULL;
  for (size_t i = 0; i < sizeof modes / sizeof *modes; i++)
    if (!strcmp(word, modes[i].name)) mode = &modes[i];
  if (argc < 2 || argc > 3 || !mode) {
    fprintf(stderr,
            "usage: %s DUMP.h5|DUMP.twin [f32|f32-peer|bf16|fp16]   (tests/twin/unet_twin.py)\n"
            "       %s --needed f32|f32-peer|bf16|fp16   (0: a backend here runs it; 77: none)\n",
            argv[0], argv[0]);
    return 2;
  }
  const fp_dtype compute = mode->compute;
  if (probe) return needed(compute, word);
  /* before the dump is opened: a generator that skipped (--needed) wrote none */
  const backend *be = test_backend();
  char why[256];
  if (be->dtype_support(compute, why, sizeof why) == DTYPE_NOT_NATIVE) {
    printf("skipped: %s\n", why);
    return 77;
  }
  twin_file f = {twin_dump_open(argv[1]), argv[1], mode->peer, 1.0};
  char scale_name[64];
  float scale;
  snprintf(scale_name, sizeof scale_name, "%sloss_scale", mode->peer ? mode->peer : "");
  if (twin_dump_read_floats(f.dump, scale_name, &scale, 1) == 0) f.loss_scale = scale;
  FP_CHECK(compute != FP_F16 || f.loss_scale > 1.0, "%s: no /%s: fp16 is checked with loss scaling",
           f.path, scale_name);
  unet *m = twin_model(be, &f, compute);
  batch b = upload_batch(be, &f, m);
  comparison forward = {.what = "forward output", .tolerance = forward_tolerance};
  comparison gradients = {.what = "gradients", .tolerance = gradient_tolerance};
  comparison stepped = {.what = "after optimiser steps", .tolerance = step_tolerance};
  comparison *groups[] = {&forward, &gradients, &stepped};
  for (int i = 0; i < 3; i++) {
    groups[i]->against_peer = mode->peer != NULL;
    groups[i]->peer_floor = mode->peer_floor;
    groups[i]->peer_name = mode->peer_name;
    groups[i]->zero_bound = mode->zero_bound;
    groups[i]->mean_ratio = mode->mean_ratio;
  }
  int failures = check_first_pass(&f, m, &b, &forward, &gradients);
  unet_destroy(m);
  m = twin_model(be, &f, compute); /* the steps start from the initial state again */
  failures += check_steps(&f, m, &b, &stepped);

  int reference = be->reference_primitive_count();
  printf("primitives using oneDNN reference code: %d\n", reference);
  if (reference > 0) failures++;
  twin_dump_close(f.dump);
  release_batch(be, &b);
  unet_destroy(m);
  printf("%s\n", failures ? "TWIN MISMATCH" : "twin agrees");
  return failures ? 1 : 0;
}
