/* Finite-difference checks of the ops the Extended U-Net's branches use: global max pool,
 * broadcasting a vector over a plane (and its sum), elementwise product (dropout), the
 * class-presence loss (sigmoid BCE) and the box loss (sigmoid smooth-L1 over present classes);
 * then each in bf16 against f32 (gradcheck.h). The losses' values are checked against host
 * references in double too. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "gradcheck.h"
#include "test_backend.h"

static int value_failures;

/* --------------------------------------- pooling, broadcast, mul, sigmoid */

static void maxpool_forward(const op_case *c, float **in, float *out) {
  tensor x = upload(&c->x, in[0]), y = upload(&c->y, NULL);
  be->global_maxpool_forward(&x, &y);
  download(&y, out);
  be->release(x.data);
}

static void maxpool_backward(const op_case *c, float **in, const float *dy_host, float **grads) {
  tensor x = upload(&c->x, in[0]), dy = upload(&c->y, dy_host), dx = upload(&c->x, NULL);
  be->global_maxpool_backward(&x, &dy, &dx);
  download(&dx, grads[0]);
  be->release(x.data);
  be->release(dy.data);
}

static void broadcast_forward(const op_case *c, float **in, float *out) {
  tensor x = upload(&c->x, in[0]), y = upload(&c->y, NULL);
  be->broadcast_plane(&x, &y);
  download(&y, out);
  be->release(x.data);
}

static void broadcast_backward(const op_case *c, float **in, const float *dy_host, float **grads) {
  (void)in;
  tensor dy = upload(&c->y, dy_host), dx = upload(&c->x, NULL);
  be->sum_plane(&dy, &dx);
  download(&dx, grads[0]);
  be->release(dy.data);
}

static void mul_forward(const op_case *c, float **in, float *out) {
  tensor a = upload(&c->x, in[0]), b = upload(&c->x, in[1]), y = upload(&c->x, NULL);
  be->mul(&a, &b, &y);
  download(&y, out);
  be->release(a.data);
  be->release(b.data);
}

/* d(a*b)/da = b, d(a*b)/db = a: the op's use in backward is mul(dy, mask) */
static void mul_backward(const op_case *c, float **in, const float *dy_host, float **grads) {
  tensor dy = upload(&c->x, dy_host), a = upload(&c->x, in[0]), b = upload(&c->x, in[1]),
         da = upload(&c->x, NULL), db = upload(&c->x, NULL);
  be->mul(&dy, &b, &da);
  be->mul(&dy, &a, &db);
  download(&da, grads[0]);
  download(&db, grads[1]);
  tensor *rest[] = {&dy, &a, &b};
  for (int i = 0; i < 3; i++) be->release(rest[i]->data);
}

static void sigmoid_forward(const op_case *c, float **in, float *out) {
  tensor x = upload(&c->x, in[0]), y = upload(&c->x, NULL);
  be->sigmoid_forward(&x, &y);
  download(&y, out);
  be->release(x.data);
}

/* backward reads the forward output, as the model calls it */
static void sigmoid_backward(const op_case *c, float **in, const float *dy_host, float **grads) {
  tensor x = upload(&c->x, in[0]), y = upload(&c->x, NULL), dy = upload(&c->x, dy_host);
  be->sigmoid_forward(&x, &y);
  be->sigmoid_backward(&y, &dy, &dy); /* in place, as allowed */
  download(&dy, grads[0]);
  be->release(x.data);
  be->release(y.data);
}

static op_case shape_case(const char *name, tensor x, tensor y, int inputs) {
  op_case oc = {0};
  oc.name = name;
  oc.x = x;
  oc.y = y;
  oc.input_count = inputs;
  oc.input_names[0] = "x";
  oc.input_names[1] = "mask";
  oc.input_sizes[0] = oc.input_sizes[1] = tensor_count(&x);
  oc.output_size = tensor_count(&y);
  oc.step = 1e-2;
  return oc;
}

/* ------------------------------------------------------------------ losses */

/* targets: [N*K] for BCE, [N*4K] for boxes; mask: [N*K] (boxes) */
static float targets[64], box_mask[16];

static double sigmoid(double x) {
  return 1.0 / (1.0 + exp(-x));
}

static void expect_value(const char *what, double got, double want) {
  int ok = fabs(got - want) <= 1e-5 * fmax(fabs(want), 1.0);
  if (!ok || activation_dtype == FP_F32)
    printf("  %-34s value %.8f, host reference %.8f %s\n", what, got, want, ok ? "ok" : "FAIL");
  value_failures += !ok && activation_dtype == FP_F32;
}

static void loss_run(const op_case *c, float **in, float grad_scale, float *out, float **grads) {
  tensor x = upload(&c->x, in[0]), grad = upload(&c->x, NULL);
  size_t count = tensor_count(&c->x);
  float *t = upload_flat(targets, count);
  float *mask = upload_flat(box_mask, count / 4 + 1);
  double *scalars = be->alloc(FP_F64, SCALAR_COUNT), host[SCALAR_COUNT];
  int boxes = c->has_bias; /* the box loss case */
  if (boxes)
    be->sigmoid_smooth_l1(&x, t, mask, grad_scale, NULL, grads ? &grad : NULL, scalars);
  else
    be->sigmoid_bce(&x, t, grad_scale, grads ? &grad : NULL, scalars);
  be->download(host, scalars, FP_F64, SCALAR_COUNT);
  if (out) out[0] = (float)host[boxes ? SCALAR_BOX_LOSS : SCALAR_CLASS_LOSS];
  if (grads)
    download(&grad, grads[0]);
  else
    be->release(grad.data);
  be->release(x.data);
  be->release(t);
  be->release(mask);
  be->release(scalars);
}

static void loss_forward(const op_case *c, float **in, float *out) {
  loss_run(c, in, 1.0f, out, NULL);
}

/* grad_scale carries d loss / d output, so the op's own scaling is checked too */
static void loss_backward(const op_case *c, float **in, const float *dy_host, float **grads) {
  loss_run(c, in, dy_host[0], NULL, grads);
}

/* the losses' values against double-precision host references */
static void check_loss_values(const op_case *bce, const op_case *box, rng *r) {
  float x[64];
  for (size_t i = 0; i < 64; i++) x[i] = (float)(3.0 * rng_normal(r));
  float *in[1] = {x}, got;
  double bce_want = 0.0, box_sum = 0.0, present = 0.0;
  for (size_t i = 0; i < tensor_count(&bce->x); i++)
    bce_want += fmax(x[i], 0.0) - x[i] * targets[i] + log1p(exp(-fabs(x[i])));
  bce_want /= (double)tensor_count(&bce->x);
  for (size_t i = 0; i < tensor_count(&box->x); i++) {
    if (box_mask[i / 4] == 0.0f) continue;
    double d = sigmoid(x[i]) - targets[i];
    box_sum += fabs(d) < 1.0 ? 0.5 * d * d : fabs(d) - 0.5;
    present += 1.0;
  }
  loss_forward(bce, in, &got);
  expect_value("sigmoid BCE", got, bce_want);
  loss_forward(box, in, &got);
  expect_value("box smooth-L1 (present classes)", got, box_sum / present);
}

static op_case loss_case(const char *name, tensor x, int boxes) {
  op_case oc = shape_case(name, x, tensor_shape(FP_F32, 1, 1, 1, 1), 1);
  oc.forward = loss_forward;
  oc.backward = loss_backward;
  oc.has_bias = boxes;
  oc.step = 1e-2;
  return oc;
}

int main(void) {
  be = test_backend();
  rng r;
  rng_seed(&r, 2024);
  for (size_t i = 0; i < sizeof targets / sizeof *targets; i++)
    targets[i] = i % 5 == 0 ? 0.0f : (float)rng_uniform(&r); /* soft and hard targets */
  for (size_t i = 0; i < sizeof box_mask / sizeof *box_mask; i++) box_mask[i] = (float)(i % 3 != 1);

  op_case cases[8];
  int count = 0;
  op_case pool = shape_case("global max pool (16 ch, 3x4)", tensor_shape(FP_F32, 2, 16, 3, 4),
                            tensor_shape(FP_F32, 2, 16, 1, 1), 1);
  pool.forward = maxpool_forward;
  pool.backward = maxpool_backward;
  pool.value_spacing = 1e-3f;
  pool.step = 2e-4;
  cases[count++] = pool;
  op_case tile = shape_case("broadcast over a plane (5 ch, 3x2)", tensor_shape(FP_F32, 2, 5, 1, 1),
                            tensor_shape(FP_F32, 2, 5, 3, 2), 1);
  tile.forward = broadcast_forward;
  tile.backward = broadcast_backward;
  cases[count++] = tile;
  op_case product = shape_case("mul (dropout mask)", tensor_shape(FP_F32, 3, 8, 1, 1),
                               tensor_shape(FP_F32, 3, 8, 1, 1), 2);
  product.forward = mul_forward;
  product.backward = mul_backward;
  cases[count++] = product;
  op_case logistic =
      shape_case("sigmoid (injected probabilities)", tensor_shape(FP_F32, 3, 10, 1, 1),
                 tensor_shape(FP_F32, 3, 10, 1, 1), 1);
  logistic.forward = sigmoid_forward;
  logistic.backward = sigmoid_backward;
  cases[count++] = logistic;
  op_case bce = loss_case("sigmoid BCE (4 x 6 classes)", tensor_shape(FP_F32, 4, 6, 1, 1), 0);
  op_case box =
      loss_case("box smooth-L1 (4 x 3 classes x 4)", tensor_shape(FP_F32, 4, 12, 1, 1), 1);
  cases[count++] = bce;
  cases[count++] = box;

  check_loss_values(&bce, &box, &r);
  int failures = gradcheck_run(cases, count, NULL, &r) + value_failures;
  return failures ? 1 : 0;
}
