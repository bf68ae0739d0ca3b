/* Finite-difference checks of every backward op of the backend on small random
 * shapes, with channel counts that use both the blocked and the plain layout.
 * Loss = sum(r * op(inputs)) for a fixed random r, so d loss / d output = r.
 * Then every op again in bf16 (activations and weights; parameter gradients stay f32) against
 * the same op in f32 on the same bf16-representable inputs: what is left is the rounding of
 * bf16 results, at most 2^-9 relative per element, so each tensor must agree to 1e-2 of its
 * largest magnitude. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "gradcheck.h"
#include "test_backend.h"

/* ---------------------------------------------------------------- conv */

static void conv_forward(const op_case *c, float **in, float *out) {
  tensor x = upload(&c->x, in[0]), y = upload(&c->y, NULL);
  void *w = upload_weights(in[1], c->input_sizes[1]);
  float *bias = c->has_bias ? upload_flat(in[2], c->input_sizes[2]) : NULL;
  be->conv2d_forward(&c->conv, &x, w, bias, &y);
  download(&y, out);
  be->release(x.data);
  be->release(w);
  if (bias) be->release(bias);
}

static void conv_backward(const op_case *c, float **in, const float *dy_host, float **grads) {
  tensor x = upload(&c->x, in[0]), dy = upload(&c->y, dy_host), dx = upload(&c->x, NULL);
  void *w = upload_weights(in[1], c->input_sizes[1]);
  float *dw = be->alloc(FP_F32, c->input_sizes[1]);
  float *db = c->has_bias ? be->alloc(FP_F32, c->input_sizes[2]) : NULL;
  be->conv2d_backward_data(&c->conv, &dy, w, &dx);
  be->conv2d_backward_weights(&c->conv, &x, &dy, dw, db);
  download(&dx, grads[0]);
  download_flat(grads[1], dw, c->input_sizes[1]);
  if (db) download_flat(grads[2], db, c->input_sizes[2]);
  be->release(x.data);
  be->release(dy.data);
  be->release(w);
}

static op_case conv_case(const char *name, int n, int c, int h, int w, int k_out, int kernel,
                         int stride, int has_bias) {
  op_case oc = {0};
  oc.name = name;
  oc.conv = (conv_desc){c, k_out, kernel, stride, kernel / 2};
  oc.x = tensor_shape(FP_F32, n, c, h, w);
  oc.y = tensor_shape(FP_F32, n, k_out, conv_out_size(&oc.conv, h), conv_out_size(&oc.conv, w));
  oc.has_bias = has_bias;
  oc.input_count = has_bias ? 3 : 2;
  oc.input_names[0] = "x";
  oc.input_names[1] = "weights";
  oc.input_names[2] = "bias";
  oc.input_sizes[0] = tensor_count(&oc.x);
  oc.input_sizes[1] = (size_t)k_out * c * kernel * kernel;
  oc.input_sizes[2] = (size_t)k_out;
  oc.output_size = tensor_count(&oc.y);
  oc.forward = conv_forward;
  oc.backward = conv_backward;
  oc.step = 1e-2;
  return oc;
}

/* ----------------------------------------------------------- batch norm */

static void bn_forward(const op_case *c, float **in, float *out) {
  tensor x = upload(&c->x, in[0]), y = upload(&c->x, NULL);
  float *gamma = upload_flat(in[1], (size_t)c->x.c), *beta = upload_flat(in[2], (size_t)c->x.c);
  float *mean = be->alloc(FP_F32, (size_t)c->x.c), *var = be->alloc(FP_F32, (size_t)c->x.c);
  be->batchnorm_forward_training(&x, gamma, beta, 1e-5f, &y, mean, var);
  download(&y, out);
  be->release(x.data);
  be->release(gamma);
  be->release(beta);
  be->release(mean);
  be->release(var);
}

static void bn_backward(const op_case *c, float **in, const float *dy_host, float **grads) {
  size_t channels = (size_t)c->x.c;
  tensor x = upload(&c->x, in[0]), y = upload(&c->x, NULL), dy = upload(&c->x, dy_host),
         dx = upload(&c->x, NULL);
  float *gamma = upload_flat(in[1], channels), *beta = upload_flat(in[2], channels);
  float *mean = be->alloc(FP_F32, channels), *var = be->alloc(FP_F32, channels);
  float *dgamma = be->alloc(FP_F32, channels), *dbeta = be->alloc(FP_F32, channels);
  be->batchnorm_forward_training(&x, gamma, beta, 1e-5f, &y, mean, var);
  be->batchnorm_backward(&x, &dy, gamma, mean, var, 1e-5f, &dx, dgamma, dbeta);
  download(&dx, grads[0]);
  download_flat(grads[1], dgamma, channels);
  download_flat(grads[2], dbeta, channels);
  void *release[] = {x.data, y.data, dy.data, gamma, beta, mean, var};
  for (size_t i = 0; i < sizeof release / sizeof release[0]; i++) be->release(release[i]);
}

static op_case bn_case(const char *name, int n, int c, int h, int w) {
  op_case oc = {0};
  oc.name = name;
  oc.x = tensor_shape(FP_F32, n, c, h, w);
  oc.input_count = 3;
  oc.input_names[0] = "x";
  oc.input_names[1] = "gamma";
  oc.input_names[2] = "beta";
  oc.input_sizes[0] = tensor_count(&oc.x);
  oc.input_sizes[1] = oc.input_sizes[2] = (size_t)c;
  oc.output_size = tensor_count(&oc.x);
  oc.forward = bn_forward;
  oc.backward = bn_backward;
  oc.step = 1e-2;
  return oc;
}

/* ------------------------------------------- single-input shape-only ops */

typedef void (*unary_forward)(const op_case *c, const tensor *x, tensor *y);
typedef void (*unary_backward)(const op_case *c, const tensor *x, const tensor *y, const tensor *dy,
                               tensor *dx);

static void relu_f(const op_case *c, const tensor *x, tensor *y) {
  (void)c;
  be->relu_forward(x, y);
}
static void relu_b(const op_case *c, const tensor *x, const tensor *y, const tensor *dy,
                   tensor *dx) {
  (void)c;
  (void)x;
  be->relu_backward(y, dy, dx);
}
static void maxpool_f(const op_case *c, const tensor *x, tensor *y) {
  be->maxpool_forward(&c->pool, x, y);
}
static void maxpool_b(const op_case *c, const tensor *x, const tensor *y, const tensor *dy,
                      tensor *dx) {
  (void)y;
  be->maxpool_backward(&c->pool, x, dy, dx);
}
static void upsample_f(const op_case *c, const tensor *x, tensor *y) {
  (void)c;
  be->upsample2x_forward(x, y);
}
static void upsample_b(const op_case *c, const tensor *x, const tensor *y, const tensor *dy,
                       tensor *dx) {
  (void)c;
  (void)x;
  (void)y;
  be->upsample2x_backward(dy, dx);
}
static void avgpool_f(const op_case *c, const tensor *x, tensor *y) {
  (void)c;
  be->global_avgpool_forward(x, y);
}
static void avgpool_b(const op_case *c, const tensor *x, const tensor *y, const tensor *dy,
                      tensor *dx) {
  (void)c;
  (void)x;
  (void)y;
  be->global_avgpool_backward(dy, dx);
}

typedef struct unary_ops {
  unary_forward forward;
  unary_backward backward;
} unary_ops;

static const unary_ops relu_ops = {relu_f, relu_b}, maxpool_ops = {maxpool_f, maxpool_b},
                       upsample_ops = {upsample_f, upsample_b},
                       avgpool_ops = {avgpool_f, avgpool_b};
static const unary_ops *current_unary;

static void unary_forward_host(const op_case *c, float **in, float *out) {
  tensor x = upload(&c->x, in[0]), y = upload(&c->y, NULL);
  current_unary->forward(c, &x, &y);
  download(&y, out);
  be->release(x.data);
}

static void unary_backward_host(const op_case *c, float **in, const float *dy_host, float **grads) {
  tensor x = upload(&c->x, in[0]), y = upload(&c->y, NULL), dy = upload(&c->y, dy_host),
         dx = upload(&c->x, NULL);
  current_unary->forward(c, &x, &y);
  current_unary->backward(c, &x, &y, &dy, &dx);
  download(&dx, grads[0]);
  be->release(x.data);
  be->release(y.data);
  be->release(dy.data);
}

static void select_unary(const op_case *c) {
  if (c->forward != unary_forward_host) return;
  const char *n = c->name;
  current_unary = !strncmp(n, "relu", 4)       ? &relu_ops
                  : !strncmp(n, "maxpool", 7)  ? &maxpool_ops
                  : !strncmp(n, "upsample", 8) ? &upsample_ops
                                               : &avgpool_ops;
}

static op_case unary_case(const char *name, tensor x, tensor y) {
  op_case oc = {0};
  oc.name = name;
  oc.x = x;
  oc.y = y;
  oc.input_count = 1;
  oc.input_names[0] = "x";
  oc.input_sizes[0] = tensor_count(&x);
  oc.output_size = tensor_count(&y);
  oc.forward = unary_forward_host;
  oc.backward = unary_backward_host;
  oc.step = 1e-2;
  return oc;
}

/* ------------------------------------------------------- concat and add */

static void concat_forward(const op_case *c, float **in, float *out) {
  tensor a = upload(&c->x, in[0]), b = upload(&c->b, in[1]), y = upload(&c->y, NULL);
  be->concat_channels(&a, &b, &y);
  download(&y, out);
  be->release(a.data);
  be->release(b.data);
}

static void concat_backward(const op_case *c, float **in, const float *dy_host, float **grads) {
  (void)in;
  tensor dy = upload(&c->y, dy_host), da = upload(&c->x, NULL), db = upload(&c->b, NULL);
  be->split_channels(&dy, &da, &db);
  download(&da, grads[0]);
  download(&db, grads[1]);
  be->release(dy.data);
}

static void add_forward(const op_case *c, float **in, float *out) {
  tensor a = upload(&c->x, in[0]), b = upload(&c->x, in[1]), y = upload(&c->x, NULL);
  be->add(&a, &b, &y);
  download(&y, out);
  be->release(a.data);
  be->release(b.data);
}

/* add's backward is the identity to both inputs; the op table has no separate
 * op for it, so this checks that the model's use (pass dy to both) is right. */
static void add_backward(const op_case *c, float **in, const float *dy_host, float **grads) {
  (void)in;
  memcpy(grads[0], dy_host, c->output_size * sizeof *dy_host);
  memcpy(grads[1], dy_host, c->output_size * sizeof *dy_host);
}

static op_case binary_case(const char *name, tensor a, tensor b, tensor y, int is_concat) {
  op_case oc = {0};
  oc.name = name;
  oc.x = a;
  oc.b = b;
  oc.y = y;
  oc.input_count = 2;
  oc.input_names[0] = "a";
  oc.input_names[1] = "b";
  oc.input_sizes[0] = tensor_count(&a);
  oc.input_sizes[1] = tensor_count(&b);
  oc.output_size = tensor_count(&y);
  oc.forward = is_concat ? concat_forward : add_forward;
  oc.backward = is_concat ? concat_backward : add_backward;
  oc.step = 1e-2;
  return oc;
}

/* -------------------------------------------------------- inner product */

static void ip_forward(const op_case *c, float **in, float *out) {
  tensor x = upload(&c->x, in[0]), y = upload(&c->y, NULL);
  void *w = upload_weights(in[1], c->input_sizes[1]);
  float *bias = upload_flat(in[2], c->input_sizes[2]);
  be->inner_product_forward(&x, w, bias, &y);
  download(&y, out);
  be->release(x.data);
  be->release(w);
  be->release(bias);
}

static void ip_backward(const op_case *c, float **in, const float *dy_host, float **grads) {
  tensor x = upload(&c->x, in[0]), dy = upload(&c->y, dy_host), dx = upload(&c->x, NULL);
  void *w = upload_weights(in[1], c->input_sizes[1]);
  float *dw = be->alloc(FP_F32, c->input_sizes[1]), *db = be->alloc(FP_F32, c->input_sizes[2]);
  be->inner_product_backward(&x, &dy, w, &dx, dw, db);
  download(&dx, grads[0]);
  download_flat(grads[1], dw, c->input_sizes[1]);
  download_flat(grads[2], db, c->input_sizes[2]);
  be->release(x.data);
  be->release(dy.data);
  be->release(w);
}

static op_case ip_case(const char *name, tensor x, int out_features) {
  op_case oc = {0};
  oc.name = name;
  oc.x = x;
  oc.y = tensor_shape(FP_F32, x.n, out_features, 1, 1);
  oc.input_count = 3;
  oc.input_names[0] = "x";
  oc.input_names[1] = "weights";
  oc.input_names[2] = "bias";
  oc.input_sizes[0] = tensor_count(&x);
  oc.input_sizes[1] = (size_t)out_features * x.c * x.h * x.w;
  oc.input_sizes[2] = (size_t)out_features;
  oc.output_size = tensor_count(&oc.y);
  oc.forward = ip_forward;
  oc.backward = ip_backward;
  oc.step = 1e-2;
  return oc;
}

/* ------------------------------------------------------------ loss */

/* The loss op returns a scalar; as an "output" of size 1 with r = 1 this
 * checks its gradient directly. */
typedef struct loss_inputs {
  uint8_t *labels;
  float *class_weights;
  double *scalars;
} loss_inputs;

static loss_inputs loss_inputs_upload(const op_case *c) {
  size_t pixels = c->x.n * (size_t)c->x.h * c->x.w;
  loss_inputs l = {be->alloc(FP_U8, pixels), upload_flat(c->class_weights, (size_t)c->x.c),
                   be->alloc(FP_F64, SCALAR_COUNT)};
  be->upload(l.labels, c->labels, FP_U8, pixels);
  return l;
}

static void loss_inputs_release(loss_inputs *l) {
  be->release(l->labels);
  be->release(l->class_weights);
  be->release(l->scalars);
}

static void ce_forward(const op_case *c, float **in, float *out) {
  tensor logits = upload(&c->x, in[0]);
  loss_inputs l = loss_inputs_upload(c);
  be->softmax_cross_entropy(&logits, l.labels, l.class_weights, 255, 1.0f, NULL, NULL, l.scalars);
  double scalars[SCALAR_COUNT];
  be->download(scalars, l.scalars, FP_F64, SCALAR_COUNT);
  out[0] = (float)scalars[SCALAR_LOSS];
  loss_inputs_release(&l);
  be->release(logits.data);
}

/* grad_scale carries d loss / d output, so the op's own scaling is checked too */
static void ce_backward(const op_case *c, float **in, const float *dy_host, float **grads) {
  tensor logits = upload(&c->x, in[0]), grad = upload(&c->x, NULL);
  loss_inputs l = loss_inputs_upload(c);
  be->softmax_cross_entropy(&logits, l.labels, l.class_weights, 255, dy_host[0], NULL, &grad,
                            l.scalars);
  download(&grad, grads[0]);
  loss_inputs_release(&l);
  be->release(logits.data);
}

int main(void) {
  be = test_backend();
  rng r;
  rng_seed(&r, 12345);
  int failures = 0;

  op_case cases[32];
  int count = 0;
  cases[count++] = conv_case("conv 3x3 s1 (16->8, blocked)", 2, 16, 6, 5, 8, 3, 1, 0);
  cases[count++] = conv_case("conv 3x3 s2 (8->16)", 2, 8, 7, 6, 16, 3, 2, 0);
  cases[count++] = conv_case("conv 1x1 s2 (8->16)", 2, 8, 6, 6, 16, 1, 2, 0);
  cases[count++] = conv_case("conv 7x7 s2 stem (3->8)", 1, 3, 12, 10, 8, 7, 2, 0);
  cases[count++] = conv_case("conv 3x3 head (16->5, bias)", 2, 16, 6, 4, 5, 3, 1, 1);
  cases[count++] = bn_case("batchnorm (8 ch, blocked)", 3, 8, 4, 5);
  cases[count++] = bn_case("batchnorm (5 ch, plain)", 2, 5, 3, 4);
  op_case relu =
      unary_case("relu", tensor_shape(FP_F32, 2, 8, 4, 3), tensor_shape(FP_F32, 2, 8, 4, 3));
  relu.value_spacing = 1e-3f;
  relu.step = 2e-4;
  cases[count++] = relu;
  op_case pool = unary_case("maxpool 3x3 s2 p1", tensor_shape(FP_F32, 2, 8, 7, 6),
                            tensor_shape(FP_F32, 2, 8, 4, 3));
  pool.pool = (pool_desc){3, 2, 1};
  pool.value_spacing = 1e-3f;
  pool.step = 2e-4;
  cases[count++] = pool;
  cases[count++] = unary_case("upsample nearest x2", tensor_shape(FP_F32, 2, 8, 3, 2),
                              tensor_shape(FP_F32, 2, 8, 6, 4));
  cases[count++] = unary_case("upsample nearest x2 (plain)", tensor_shape(FP_F32, 1, 3, 3, 2),
                              tensor_shape(FP_F32, 1, 3, 6, 4));
  cases[count++] = unary_case("global average pool", tensor_shape(FP_F32, 2, 16, 3, 4),
                              tensor_shape(FP_F32, 2, 16, 1, 1));
  cases[count++] =
      binary_case("concat (8+16 ch)", tensor_shape(FP_F32, 2, 8, 3, 2),
                  tensor_shape(FP_F32, 2, 16, 3, 2), tensor_shape(FP_F32, 2, 24, 3, 2), 1);
  cases[count++] =
      binary_case("add", tensor_shape(FP_F32, 2, 8, 3, 2), tensor_shape(FP_F32, 2, 8, 3, 2),
                  tensor_shape(FP_F32, 2, 8, 3, 2), 0);
  cases[count++] = ip_case("inner product (16x2x2 -> 5)", tensor_shape(FP_F32, 2, 16, 2, 2), 5);
  cases[count++] = ip_case("inner product (3x1x1 -> 8)", tensor_shape(FP_F32, 3, 3, 1, 1), 8);

  uint8_t labels[2 * 4 * 5];
  float class_weights[6] = {1, 2, 2, 0.5f, 2, 3};
  for (size_t i = 0; i < sizeof labels; i++) labels[i] = (uint8_t)(i % 7 == 3 ? 255 : i % 6);
  op_case ce = unary_case("softmax cross-entropy (weighted, ignore)",
                          tensor_shape(FP_F32, 2, 6, 4, 5), tensor_shape(FP_F32, 1, 1, 1, 1));
  ce.forward = ce_forward;
  ce.backward = ce_backward;
  ce.labels = labels;
  ce.class_weights = class_weights;
  ce.step = 1e-2;
  cases[count++] = ce;

  failures += gradcheck_run(cases, count, select_unary, &r);
  return failures ? 1 : 0;
}
