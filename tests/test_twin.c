/* Compares the C engine against the PyTorch twin's dump (tests/twin/unet_twin.py):
 * forward output, loss, every gradient, and parameters, BN running statistics
 * and losses after several optimiser steps on the same weights and inputs.
 * Error per tensor: max|c - torch| / max|torch|. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "h5_tensors.h"
#include "optim.h"
#include "unet.h"

static const double forward_tolerance = 1e-4;
static const double gradient_tolerance = 1e-3;
static const double step_tolerance = 1e-3;

typedef struct comparison {
  const char *what;
  double tolerance;
  double worst_error;
  char worst_name[128];
  int failures;
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

static void compare(comparison *c, const char *name, const float *got, const float *want,
                    size_t count) {
  double error = relative_error(got, want, count);
  if (!(error <= c->tolerance)) {
    c->failures++;
    printf("  FAIL %-55s rel error %.3e > %.1e\n", name, error, c->tolerance);
  }
  if (!(error <= c->worst_error)) {
    c->worst_error = error;
    snprintf(c->worst_name, sizeof c->worst_name, "%s", name);
  }
}

static int report(const comparison *c) {
  printf("%-28s worst %.3e (%s), tolerance %.0e: %s\n", c->what, c->worst_error, c->worst_name,
         c->tolerance, c->failures ? "FAIL" : "ok");
  return c->failures;
}

static void compare_list(comparison *c, hid_t file, const char *path, const char *group,
                         const tensor_list *list, const float *got) {
  float *want = fp_malloc(list->total * sizeof(float));
  h5_read_tensor_list(file, path, group, list, want);
  for (int i = 0; i < list->count; i++) {
    const named_tensor *t = &list->items[i];
    compare(c, t->name, got + t->offset, want + t->offset, t->count);
  }
  free(want);
}

static double loss_of_batch(unet *m, const uint8_t *labels, const float *class_weights) {
  unet_forward(m, 1);
  return m->be->softmax_cross_entropy(&m->logits, labels, class_weights, 255, &m->grad_logits);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s TWIN.h5   (made by tests/twin/unet_twin.py)\n", argv[0]);
    return 2;
  }
  const char *path = argv[1];
  hid_t file = h5_open_read(path);
  char arch_name[16];
  h5_read_attr_string(file, path, "arch", arch_name, sizeof arch_name);
  unet_arch arch;
  FP_CHECK(unet_arch_parse(arch_name, &arch) == 0, "%s: unknown arch %s", path, arch_name);
  int height = (int)h5_read_attr_long(file, path, "height");
  int width = (int)h5_read_attr_long(file, path, "width");
  int batch = (int)h5_read_attr_long(file, path, "batch");
  int classes = (int)h5_read_attr_long(file, path, "classes");
  long steps = h5_read_attr_long(file, path, "steps");
  char optimizer_name[16];
  h5_read_attr_string(file, path, "optimizer", optimizer_name, sizeof optimizer_name);
  printf("twin %s: %s %dx%d batch %d, %d classes, %ld %s steps\n", path, arch_name, height, width,
         batch, classes, steps, optimizer_name);

  const backend *be = backend_cpu();
  unet *m = unet_create(be, arch, classes, batch, height, width, 0);
  float *initial_params = fp_malloc(m->param_list.total * sizeof(float));
  float *initial_buffers = fp_malloc(m->buffer_list.total * sizeof(float));
  h5_read_tensor_list(file, path, "params", &m->param_list, initial_params);
  h5_read_tensor_list(file, path, "buffers", &m->buffer_list, initial_buffers);
  be->copy_from_host(m->params, initial_params, m->param_list.total * sizeof(float));
  be->copy_from_host(m->buffers, initial_buffers, m->buffer_list.total * sizeof(float));

  size_t input_count = tensor_count(&m->input), logit_count = tensor_count(&m->logits);
  size_t pixels = (size_t)batch * height * width;
  float *input = fp_malloc(input_count * sizeof(float));
  float *want_output = fp_malloc(logit_count * sizeof(float));
  float *got_output = fp_malloc(logit_count * sizeof(float));
  float *class_weights = fp_malloc((size_t)classes * sizeof(float));
  uint8_t *labels = fp_malloc(pixels);
  FP_CHECK(h5_read_floats(file, path, "input", input, input_count) == 0, "%s: no /input", path);
  FP_CHECK(h5_read_floats(file, path, "output", want_output, logit_count) == 0, "%s: no /output",
           path);
  FP_CHECK(h5_read_floats(file, path, "class_weights", class_weights, (size_t)classes) == 0,
           "%s: no /class_weights", path);
  hid_t labels_set = H5Dopen2(file, "labels", H5P_DEFAULT);
  FP_CHECK(labels_set >= 0, "%s: no /labels", path);
  H5_CHECK(H5Dread(labels_set, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels));
  H5Dclose(labels_set);
  float want_loss, want_grad_norm;
  FP_CHECK(h5_read_floats(file, path, "loss", &want_loss, 1) == 0, "%s: no /loss", path);
  FP_CHECK(h5_read_floats(file, path, "grad_norm", &want_grad_norm, 1) == 0, "%s: no /grad_norm",
           path);

  int failures = 0;
  be->tensor_from_nchw(&m->input, input);
  double loss = loss_of_batch(m, labels, class_weights);
  be->tensor_to_nchw(&m->logits, got_output);
  comparison forward = {"forward output", forward_tolerance, 0, "", 0};
  compare(&forward, "output", got_output, want_output, logit_count);
  float loss_f = (float)loss;
  compare(&forward, "loss", &loss_f, &want_loss, 1);
  printf("loss: C %.7f  PyTorch %.7f\n", loss, want_loss);
  failures += report(&forward);

  unet_backward(m);
  float *got_grads = fp_malloc(m->param_list.total * sizeof(float));
  be->copy_to_host(got_grads, m->grads, m->param_list.total * sizeof(float));
  comparison gradients = {"gradients", gradient_tolerance, 0, "", 0};
  compare_list(&gradients, file, path, "grads", &m->param_list, got_grads);
  float grad_norm = (float)sqrt(be->sum_of_squares(m->grads, m->param_list.total));
  compare(&gradients, "grad_norm", &grad_norm, &want_grad_norm, 1);
  failures += report(&gradients);

  /* optimiser steps from the initial state, the same batch each step */
  be->copy_from_host(m->params, initial_params, m->param_list.total * sizeof(float));
  be->copy_from_host(m->buffers, initial_buffers, m->buffer_list.total * sizeof(float));
  adam_config adam = {0.0f,
                      (float)h5_read_attr_double(file, path, "beta1"),
                      (float)h5_read_attr_double(file, path, "beta2"),
                      (float)h5_read_attr_double(file, path, "eps"),
                      (float)h5_read_attr_double(file, path, "weight_decay"),
                      strcmp(optimizer_name, "adam") != 0};
  schedule_config schedule = {h5_read_attr_double(file, path, "max_lr"),
                              h5_read_attr_double(file, path, "warmup_fraction"),
                              h5_read_attr_long(file, path, "total_steps")};
  optimizer *opt = optimizer_create(be, m->param_list.total, adam, schedule,
                                    h5_read_attr_double(file, path, "clip_norm"));
  float *want_losses = fp_malloc((size_t)steps * sizeof(float));
  float *want_lrs = fp_malloc((size_t)steps * sizeof(float));
  float *got_losses = fp_malloc((size_t)steps * sizeof(float));
  float *got_lrs = fp_malloc((size_t)steps * sizeof(float));
  FP_CHECK(h5_read_floats(file, path, "after/losses", want_losses, (size_t)steps) == 0,
           "%s: no /after/losses", path);
  FP_CHECK(h5_read_floats(file, path, "after/lrs", want_lrs, (size_t)steps) == 0,
           "%s: no /after/lrs", path);
  for (long s = 0; s < steps; s++) {
    got_losses[s] = (float)loss_of_batch(m, labels, class_weights);
    unet_backward(m);
    got_lrs[s] = (float)optimizer_step(opt, m->params, m->grads).lr;
    printf("step %ld: loss C %.7f PyTorch %.7f, lr C %.6e PyTorch %.6e\n", s, got_losses[s],
           want_losses[s], got_lrs[s], want_lrs[s]);
  }
  comparison stepped = {"after optimiser steps", step_tolerance, 0, "", 0};
  compare(&stepped, "losses", got_losses, want_losses, (size_t)steps);
  compare(&stepped, "lrs", got_lrs, want_lrs, (size_t)steps);
  float *got_params = fp_malloc(m->param_list.total * sizeof(float));
  float *got_buffers = fp_malloc(m->buffer_list.total * sizeof(float));
  be->copy_to_host(got_params, m->params, m->param_list.total * sizeof(float));
  be->copy_to_host(got_buffers, m->buffers, m->buffer_list.total * sizeof(float));
  compare_list(&stepped, file, path, "after/params", &m->param_list, got_params);
  compare_list(&stepped, file, path, "after/buffers", &m->buffer_list, got_buffers);
  failures += report(&stepped);

  int reference = be->reference_primitive_count();
  printf("primitives using oneDNN reference code: %d\n", reference);
  if (reference > 0) failures++;

  H5Fclose(file);
  float *host_buffers[] = {initial_params, initial_buffers, input,      want_output, got_output,
                           class_weights,  got_grads,       want_losses, want_lrs,   got_losses,
                           got_lrs,        got_params,      got_buffers};
  for (size_t i = 0; i < sizeof host_buffers / sizeof host_buffers[0]; i++) free(host_buffers[i]);
  free(labels);
  optimizer_destroy(opt);
  unet_destroy(m);
  printf("%s\n", failures ? "TWIN MISMATCH" : "twin agrees");
  return failures ? 1 : 0;
}
