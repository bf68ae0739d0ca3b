/* Compares the C engine against the PyTorch twin's dump (tests/twin/unet_twin.py):
 * forward output, loss, every gradient, and parameters, BN running statistics
 * and losses after several optimiser steps on the same weights and inputs.
 * Error per tensor: max|c - torch| / max|torch|.
 *
 * test_twin TWIN.h5            f32: fixed tolerances against the float64 twin.
 * test_twin TWIN.h5 bf16       bf16 mixed precision, against the same float64 twin. bf16 keeps 8
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
 *     for gradients and 0.98-1.03 after steps.) */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "h5_tensors.h"
#include "optim.h"
#include "test_backend.h"
#include "unet.h"

static const double forward_tolerance = 1e-4;
static const double gradient_tolerance = 1e-3;
static const double step_tolerance = 1e-3;
#define PEER_FACTOR 4.0
#define BF16_FLOOR (1.0 / 64.0)
#define MEAN_RATIO 1.5
#define MEAN_MIN_TENSORS 10

typedef struct comparison {
  const char *what;
  double tolerance; /* f32 */
  int against_peer; /* bf16: per tensor, PEER_FACTOR * peer error + BF16_FLOOR */
  double worst_error, worst_peer;
  char worst_name[128];
  int failures, count;
  double log_ratio_sum; /* of error / peer error (bf16 mode) */
} comparison;

static double relative_error(const float *got, const float *want, size_t count) {
  double max_diff = 0.0, max_want = 0.0;
  for (size_t i = 0; i < count; i++) {
    double diff = fabs((double)got[i] - want[i]);
    if (!(diff <= max_diff)) max_diff = diff; /* NaN counts as worst */
    if (fabs(want[i]) > max_want) max_want = fabs(want[i]);
  }
  return max_diff / (max_want > 1e-20 ? max_want : 1e-20);
}

/* peer: PyTorch bf16's values of the same tensor (bf16 mode), else NULL */
static void compare(comparison *c, const char *name, const float *got, const float *want,
                    const float *peer, size_t count) {
  double error = relative_error(got, want, count);
  double peer_error = peer ? relative_error(peer, want, count) : 0.0;
  double tolerance = c->against_peer ? PEER_FACTOR * peer_error + BF16_FLOOR : c->tolerance;
  c->count++;
  if (c->against_peer) /* both floored at 2^-24, f32's unit roundoff */
    c->log_ratio_sum += log(fmax(error, 0x1p-24) / fmax(peer_error, 0x1p-24));
  if (!(error <= tolerance)) {
    c->failures++;
    printf("  FAIL %-55s rel error %.3e > %.2e", name, error, tolerance);
    if (c->against_peer) printf(" (PyTorch bf16: %.3e)", peer_error);
    printf("\n");
  }
  if (!(error <= c->worst_error)) {
    c->worst_error = error;
    c->worst_peer = peer_error;
    snprintf(c->worst_name, sizeof c->worst_name, "%s", name);
  }
}

static int report(comparison *c) {
  if (c->against_peer) {
    double mean_ratio = exp(c->log_ratio_sum / c->count);
    if (c->count >= MEAN_MIN_TENSORS && !(mean_ratio <= MEAN_RATIO)) c->failures++;
    printf("%-28s worst %.3e (%s; PyTorch bf16 %.3e there); C/PyTorch error ratio, geometric "
           "mean over %d tensors, %.2f (<= %.1f%s): %s\n",
           c->what, c->worst_error, c->worst_name, c->worst_peer, c->count, mean_ratio, MEAN_RATIO,
           c->count >= MEAN_MIN_TENSORS ? "" : ", not judged over so few",
           c->failures ? "FAIL" : "ok");
  } else {
    printf("%-28s worst %.3e (%s), tolerance %.0e: %s\n", c->what, c->worst_error, c->worst_name,
           c->tolerance, c->failures ? "FAIL" : "ok");
  }
  return c->failures;
}

typedef struct twin_file {
  hid_t file;
  const char *path;
  const char *peer; /* "peer_bf16/" in bf16 mode, else NULL */
} twin_file;

/* The reference's group/name, and the peer's if there is one. */
static void read_pair(const twin_file *f, const char *name, float *want, float *peer,
                      size_t count) {
  FP_CHECK(h5_read_floats(f->file, f->path, name, want, count) == 0, "%s: no /%s", f->path, name);
  if (!f->peer) return;
  char peer_name[256];
  snprintf(peer_name, sizeof peer_name, "%s%s", f->peer, name);
  FP_CHECK(h5_read_floats(f->file, f->path, peer_name, peer, count) == 0,
           "%s: no /%s (make the dump with --bf16-peer)", f->path, peer_name);
}

static void compare_list(comparison *c, const twin_file *f, const char *group,
                         const tensor_list *list, const float *got) {
  float *want = fp_malloc(list->total * sizeof *want), *peer = NULL;
  h5_read_tensor_list(f->file, f->path, group, list, want);
  if (f->peer) {
    char peer_group[256];
    snprintf(peer_group, sizeof peer_group, "%s%s", f->peer, group);
    peer = fp_malloc(list->total * sizeof *peer);
    h5_read_tensor_list(f->file, f->path, peer_group, list, peer);
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
  uint8_t *labels;      /* backend memory */
  float *class_weights; /* backend memory */
} batch;

static double loss_of_batch(unet *m, const batch *b) {
  unet_forward(m, 1);
  m->be->softmax_cross_entropy(&m->logits, b->labels, b->class_weights, 255, 1.0f, &m->grad_logits,
                               m->scalars);
  double scalars[SCALAR_COUNT];
  unet_read_scalars(m, scalars);
  return scalars[SCALAR_LOSS];
}

static batch upload_batch(const backend *be, const twin_file *f, const unet *m) {
  size_t pixels = (size_t)m->batch * m->height * m->width;
  uint8_t *labels = fp_malloc(pixels);
  float *class_weights = fp_malloc((size_t)m->classes * sizeof *class_weights);
  FP_CHECK(h5_read_floats(f->file, f->path, "class_weights", class_weights, (size_t)m->classes) ==
               0,
           "%s: no /class_weights", f->path);
  hid_t labels_set = H5Dopen2(f->file, "labels", H5P_DEFAULT);
  FP_CHECK(labels_set >= 0, "%s: no /labels", f->path);
  H5_CHECK(H5Dread(labels_set, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels));
  H5Dclose(labels_set);
  batch b = {be->alloc(FP_U8, pixels), be->alloc(FP_F32, (size_t)m->classes)};
  be->upload(b.labels, labels, FP_U8, pixels);
  be->upload(b.class_weights, class_weights, FP_F32, (size_t)m->classes);
  free(labels);
  free(class_weights);
  return b;
}

/* Model at the dump's initial weights and buffers. */
static unet *twin_model(const backend *be, const twin_file *f, fp_dtype compute) {
  char arch_name[16];
  h5_read_attr_string(f->file, f->path, "arch", arch_name, sizeof arch_name);
  unet_arch arch;
  FP_CHECK(unet_arch_parse(arch_name, &arch) == 0, "%s: unknown arch %s", f->path, arch_name);
  unet_config config = {arch,
                        (int)h5_read_attr_long(f->file, f->path, "classes"),
                        (int)h5_read_attr_long(f->file, f->path, "batch"),
                        (int)h5_read_attr_long(f->file, f->path, "height"),
                        (int)h5_read_attr_long(f->file, f->path, "width"),
                        compute,
                        UNET_TRAINING};
  unet *m = unet_create(be, &config, 0);
  float *params = fp_malloc(m->param_list.total * sizeof *params);
  float *buffers = fp_malloc(m->buffer_list.total * sizeof *buffers);
  h5_read_tensor_list(f->file, f->path, "params", &m->param_list, params);
  h5_read_tensor_list(f->file, f->path, "buffers", &m->buffer_list, buffers);
  be->upload(m->params, params, FP_F32, m->param_list.total);
  be->upload(m->buffers, buffers, FP_F32, m->buffer_list.total);
  unet_weights_changed(m);
  float *input = fp_malloc(tensor_count(&m->input) * sizeof *input);
  FP_CHECK(h5_read_floats(f->file, f->path, "input", input, tensor_count(&m->input)) == 0,
           "%s: no /input", f->path);
  be->tensor_from_nchw(&m->input, input);
  free(input);
  free(params);
  free(buffers);
  printf("twin %s: %s %dx%d batch %d, %d classes, %s\n", f->path, arch_name, config.height,
         config.width, config.batch, config.classes, fp_dtype_name(compute));
  return m;
}

static optimizer *twin_optimizer(const backend *be, const twin_file *f, const unet *m) {
  char optimizer_name[16];
  h5_read_attr_string(f->file, f->path, "optimizer", optimizer_name, sizeof optimizer_name);
  adam_config adam = {(float)h5_read_attr_double(f->file, f->path, "beta1"),
                      (float)h5_read_attr_double(f->file, f->path, "beta2"),
                      (float)h5_read_attr_double(f->file, f->path, "eps"),
                      (float)h5_read_attr_double(f->file, f->path, "weight_decay"),
                      strcmp(optimizer_name, "adam") != 0};
  schedule_config schedule = {h5_read_attr_double(f->file, f->path, "max_lr"),
                              h5_read_attr_double(f->file, f->path, "warmup_fraction"),
                              h5_read_attr_long(f->file, f->path, "total_steps")};
  return optimizer_create(be, m->param_list.total, adam, schedule,
                          h5_read_attr_double(f->file, f->path, "clip_norm"));
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
  got_scalars[0] = (float)loss_of_batch(m, b);
  be->tensor_to_nchw(&m->logits, got);
  compare(forward, "output", got, want, f->peer ? peer : NULL, logit_count);
  compare(forward, "loss", &got_scalars[0], &want_scalars[0], f->peer ? &peer_scalars[0] : NULL, 1);
  printf("loss: C %.7f  PyTorch %.7f\n", got_scalars[0], want_scalars[0]);
  int failures = report(forward);

  unet_backward(m);
  float *grads = fp_malloc(m->param_list.total * sizeof *grads);
  be->download(grads, m->grads, FP_F32, m->param_list.total);
  compare_list(gradients, f, "grads", &m->param_list, grads);
  be->gradient_norm(m->grads, m->param_list.total, 0.0, m->scalars);
  double scalars[SCALAR_COUNT];
  unet_read_scalars(m, scalars);
  got_scalars[1] = (float)scalars[SCALAR_GRAD_NORM];
  compare(gradients, "grad_norm", &got_scalars[1], &want_scalars[1],
          f->peer ? &peer_scalars[1] : NULL, 1);
  failures += report(gradients);
  free(want);
  free(peer);
  free(got);
  free(grads);
  return failures;
}

/* Optimiser steps from the initial state, the same batch each step. */
static int check_steps(const twin_file *f, unet *m, const batch *b, comparison *stepped) {
  const backend *be = m->be;
  long steps = h5_read_attr_long(f->file, f->path, "steps");
  optimizer *opt = twin_optimizer(be, f, m);
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
    got[s] = (float)loss_of_batch(m, b);
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
    compare_list(stepped, f, "after/params", &m->param_list, params);
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

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "bf16") && strcmp(argv[2], "f32"))) {
    fprintf(stderr, "usage: %s TWIN.h5 [f32|bf16]   (made by tests/twin/unet_twin.py)\n", argv[0]);
    return 2;
  }
  fp_dtype compute = argc == 3 && !strcmp(argv[2], "bf16") ? FP_BF16 : FP_F32;
  twin_file f = {h5_open_read(argv[1]), argv[1], compute == FP_BF16 ? "peer_bf16/" : NULL};
  const backend *be = test_backend();
  char why[256];
  if (be->dtype_support(compute, why, sizeof why) == DTYPE_NOT_NATIVE) {
    printf("skipped: %s\n", why);
    return 77;
  }
  unet *m = twin_model(be, &f, compute);
  batch b = upload_batch(be, &f, m);
  int peer = compute == FP_BF16;
  comparison forward = {"forward output", forward_tolerance, peer, 0, 0, "", 0, 0, 0};
  comparison gradients = {"gradients", gradient_tolerance, peer, 0, 0, "", 0, 0, 0};
  comparison stepped = {"after optimiser steps", step_tolerance, peer, 0, 0, "", 0, 0, 0};
  int failures = check_first_pass(&f, m, &b, &forward, &gradients);
  unet_destroy(m);
  m = twin_model(be, &f, compute); /* the steps start from the initial state again */
  failures += check_steps(&f, m, &b, &stepped);

  int reference = be->reference_primitive_count();
  printf("primitives using oneDNN reference code: %d\n", reference);
  if (reference > 0) failures++;
  H5Fclose(f.file);
  be->release(b.labels);
  be->release(b.class_weights);
  unet_destroy(m);
  printf("%s\n", failures ? "TWIN MISMATCH" : "twin agrees");
  return failures ? 1 : 0;
}
