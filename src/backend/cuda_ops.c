/* CUDA backend: batch norm, activations, pooling, resampling, channel concat, the loss, argmax,
 * softmax, the gradient norm and Adam, each checking its shapes and queuing the kernels of
 * cuda_kernels.cu on the backend's stream. */
#include "cuda_internal.h"

static void check_same(const char *op, const tensor *a, const tensor *b) {
  FP_CHECK(CUDA_SAME_SHAPE(a, b) && a->dtype == b->dtype,
           "%s: tensors %dx%dx%dx%d %s and %dx%dx%dx%d %s differ", op, a->n, a->c, a->h, a->w,
           fp_dtype_name(a->dtype), b->n, b->c, b->h, b->w, fp_dtype_name(b->dtype));
}

static double *reduce_scratch(int channels) {
  FP_CHECK(2 * channels <= CUDA_REDUCE_SCRATCH, "batch norm over %d channels: more than %d",
           channels, CUDA_REDUCE_SCRATCH / 2);
  return cuda.reduce_scratch;
}

static void bn_forward_training(const tensor *x, const float *gamma, const float *beta, float eps,
                                tensor *y, float *batch_mean, float *batch_var) {
  check_same("batch norm", x, y);
  cuk_bn_forward_training(x->data, (int)x->dtype, tensor_pixels(x), x->c, gamma, beta, eps, y->data,
                          batch_mean, batch_var, reduce_scratch(x->c), cuda.stream);
}

static void bn_forward_inference(const tensor *x, const float *gamma, const float *beta,
                                 const float *running_mean, const float *running_var, float eps,
                                 tensor *y) {
  check_same("batch norm", x, y);
  cuk_bn_forward_inference(x->data, (int)x->dtype, tensor_pixels(x), x->c, gamma, beta,
                           running_mean, running_var, eps, y->data, cuda.stream);
}

static void bn_backward(const tensor *x, const tensor *dy, const float *gamma,
                        const float *batch_mean, const float *batch_var, float eps, tensor *dx,
                        float *grad_gamma, float *grad_beta) {
  check_same("batch norm backward", x, dy);
  check_same("batch norm backward", x, dx);
  cuk_bn_backward(x->data, dy->data, (int)x->dtype, tensor_pixels(x), x->c, gamma, batch_mean,
                  batch_var, eps, dx->data, grad_gamma, grad_beta, reduce_scratch(x->c),
                  cuda.stream);
}

static void bn_fold(const conv_desc *d, const float *weights, const float *conv_bias,
                    const float *gamma, const float *beta, const float *mean, const float *var,
                    float eps, void *folded_weights, fp_dtype type, float *folded_bias) {
  cuk_bn_fold(folded_weights, (int)type, folded_bias, weights, conv_bias, gamma, beta, mean, var,
              eps, d->out_channels, (size_t)d->in_channels * d->kernel * d->kernel, cuda.stream);
}

static void bn_update_running(float *running_mean, float *running_var, const float *batch_mean,
                              const float *batch_var, int channels, float momentum,
                              size_t count_per_channel) {
  cuk_bn_update_running(running_mean, running_var, batch_mean, batch_var, channels, momentum,
                        count_per_channel, cuda.stream);
}

static void bn_sync_moments(float *batch_mean, float *batch_var, const float *global_mean,
                            int channels) {
  cuk_bn_sync_moments(batch_mean, batch_var, global_mean, channels, cuda.stream);
}

static void bn_sync_backward_terms(const float *grad_gamma, const float *grad_beta,
                                   const float *mean_grads, const float *gamma,
                                   const float *batch_var, float eps, size_t count_per_channel,
                                   int channels, float *scale, float *shift) {
  cuk_bn_sync_backward_terms(grad_gamma, grad_beta, mean_grads, gamma, batch_var, eps,
                             count_per_channel, channels, scale, shift, cuda.stream);
}

static void relu_forward(const tensor *x, tensor *y) {
  check_same("relu", x, y);
  cuk_relu_forward(x->data, y->data, (int)x->dtype, tensor_count(x), cuda.stream);
}

static void relu_backward(const tensor *y, const tensor *dy, tensor *dx) {
  check_same("relu backward", y, dy);
  check_same("relu backward", y, dx);
  cuk_relu_backward(y->data, dy->data, dx->data, (int)y->dtype, tensor_count(y), cuda.stream);
}

static void check_pool(const pool_desc *d, const tensor *x, const tensor *y) {
  FP_CHECK(y->n == x->n && y->c == x->c && y->dtype == x->dtype &&
               y->h == (x->h + 2 * d->pad - d->kernel) / d->stride + 1 &&
               y->w == (x->w + 2 * d->pad - d->kernel) / d->stride + 1,
           "max pool: %dx%d -> %dx%d does not fit kernel %d stride %d pad %d", x->h, x->w, y->h,
           y->w, d->kernel, d->stride, d->pad);
}

static void maxpool_forward(const pool_desc *d, const tensor *x, tensor *y) {
  check_pool(d, x, y);
  cuk_maxpool_forward(x->data, y->data, (int)x->dtype, x->n, x->c, x->h, x->w, y->h, y->w,
                      d->kernel, d->stride, d->pad, cuda.stream);
}

static void maxpool_backward(const pool_desc *d, const tensor *x, const tensor *dy, tensor *dx) {
  check_pool(d, x, dy);
  check_same("max pool backward", x, dx);
  cuk_maxpool_backward(x->data, dy->data, dx->data, (int)x->dtype, x->n, x->c, x->h, x->w, dy->h,
                       dy->w, d->kernel, d->stride, d->pad, cuda.stream);
}

static void check_upsample(const tensor *small, const tensor *large) {
  FP_CHECK(large->n == small->n && large->c == small->c && large->h == 2 * small->h &&
               large->w == 2 * small->w && large->dtype == small->dtype,
           "upsample x2: %dx%d -> %dx%d", small->h, small->w, large->h, large->w);
}

static void upsample2x_forward(const tensor *x, tensor *y) {
  check_upsample(x, y);
  cuk_upsample2x_forward(x->data, y->data, (int)x->dtype, x->n, x->c, x->h, x->w, cuda.stream);
}

static void upsample2x_backward(const tensor *dy, tensor *dx) {
  check_upsample(dx, dy);
  cuk_upsample2x_backward(dy->data, dx->data, (int)dx->dtype, dx->n, dx->c, dx->h, dx->w,
                          cuda.stream);
}

static void check_concat(const tensor *a, const tensor *b, const tensor *y) {
  FP_CHECK(a->n == y->n && b->n == y->n && a->h == y->h && b->h == y->h && a->w == y->w &&
               b->w == y->w && a->c + b->c == y->c && a->dtype == y->dtype && b->dtype == y->dtype,
           "concat: %d + %d channels into %d, or spatial sizes differ", a->c, b->c, y->c);
}

static void concat_channels(const tensor *a, const tensor *b, tensor *y) {
  check_concat(a, b, y);
  cuk_concat_channels(a->data, a->c, b->data, b->c, y->data, (int)y->dtype, tensor_pixels(y),
                      cuda.stream);
}

static void split_channels(const tensor *dy, tensor *da, tensor *db) {
  check_concat(da, db, dy);
  cuk_split_channels(dy->data, da->data, da->c, db->data, db->c, (int)dy->dtype, tensor_pixels(dy),
                     cuda.stream);
}

static void add(const tensor *a, const tensor *b, tensor *y) {
  check_same("add", a, b);
  check_same("add", a, y);
  cuk_add(a->data, b->data, y->data, (int)a->dtype, tensor_count(a), cuda.stream);
}

static void global_avgpool_forward(const tensor *x, tensor *y) {
  FP_CHECK(y->n == x->n && y->c == x->c && y->h == 1 && y->w == 1 && y->dtype == x->dtype,
           "global average pool: output must be %dx%dx1x1", x->n, x->c);
  cuk_global_avgpool_forward(x->data, y->data, (int)x->dtype, x->n, x->c, x->h * x->w, cuda.stream);
}

static void global_avgpool_backward(const tensor *dy, tensor *dx) {
  FP_CHECK(dy->n == dx->n && dy->c == dx->c && dy->h == 1 && dy->w == 1 && dy->dtype == dx->dtype,
           "global average pool backward: gradient must be %dx%dx1x1", dx->n, dx->c);
  cuk_global_avgpool_backward(dy->data, dx->data, (int)dx->dtype, dx->n, dx->c, dx->h * dx->w,
                              cuda.stream);
}

/* Labels outside the classes are counted into scalars[SCALAR_BAD_LABELS], which the host sees
 * when it reads the step's scalars back: no wait for the device here. */
static void softmax_cross_entropy(const tensor *logits, const uint8_t *labels,
                                  const float *class_weights, int ignore_label, float grad_scale,
                                  const float *grad_factor, tensor *grad_logits, double *scalars) {
  if (grad_logits) check_same("loss gradient", logits, grad_logits);
  cuk_softmax_cross_entropy(logits->data, (int)logits->dtype, tensor_pixels(logits), logits->c,
                            labels, class_weights, ignore_label, grad_scale, grad_factor,
                            grad_logits ? grad_logits->data : NULL, scalars, cuda.reduce_scratch,
                            cuda.bad_labels, cuda.stream);
}

static void argmax_channels(const tensor *logits, uint8_t *predictions, float *confidence) {
  cuk_argmax_channels(logits->data, (int)logits->dtype, tensor_pixels(logits), logits->c,
                      predictions, confidence, cuda.stream);
}

static void class_statistics(uint8_t *predictions, const float *confidence, const uint8_t *photos,
                             const float *boxes, const float *linear, int batch, int height,
                             int width, int classes, uint8_t outside_label, double *sums) {
  FP_CHECK(classes > 0 && classes <= 256, "class statistics: %d classes", classes);
  cuk_class_statistics(predictions, confidence, photos, boxes, linear, batch, height, width,
                       classes, outside_label, sums, cuda.stream);
}

static void gradient_norm(const float *grads, size_t count, double clip_norm, double loss_scale,
                          double *scalars) {
  cuk_gradient_norm(grads, count, clip_norm, loss_scale, scalars, cuda.reduce_scratch, cuda.stream);
}

static void adam_update(float *params, const float *grads, float *exp_avg, float *exp_avg_sq,
                        size_t count, const adam_config *cfg, const double *scalars) {
  cuk_adam_update(params, grads, exp_avg, exp_avg_sq, count, cfg->beta1, cfg->beta2, cfg->eps,
                  cfg->weight_decay, cfg->decoupled_weight_decay, scalars, cuda.stream);
}

static void global_maxpool_forward(const tensor *x, tensor *y) {
  backend_check_vector("global max pool", y, x);
  cuk_global_maxpool_forward(x->data, y->data, (int)x->dtype, x->n, x->c, x->h * x->w, cuda.stream);
}

static void global_maxpool_backward(const tensor *x, const tensor *dy, tensor *dx) {
  backend_check_vector("global max pool backward", dy, x);
  check_same("global max pool backward", x, dx);
  cuk_global_maxpool_backward(x->data, dy->data, dx->data, (int)x->dtype, x->n, x->c, x->h * x->w,
                              cuda.stream);
}

static void broadcast_plane(const tensor *x, tensor *y) {
  backend_check_vector("broadcast over a plane", x, y);
  cuk_broadcast_plane(x->data, y->data, (int)y->dtype, y->n, y->c, y->h * y->w, cuda.stream);
}

static void sum_plane(const tensor *dy, tensor *dx) {
  backend_check_vector("sum over a plane", dx, dy);
  cuk_sum_plane(dy->data, dx->data, (int)dy->dtype, dy->n, dy->c, dy->h * dy->w, cuda.stream);
}

static void mul(const tensor *a, const tensor *b, tensor *y) {
  check_same("mul", a, b);
  check_same("mul", a, y);
  cuk_mul(a->data, b->data, y->data, (int)a->dtype, tensor_count(a), cuda.stream);
}

static void sigmoid_forward(const tensor *x, tensor *y) {
  check_same("sigmoid", x, y);
  cuk_sigmoid_forward(x->data, y->data, (int)x->dtype, tensor_count(x), cuda.stream);
}

static void sigmoid_backward(const tensor *y, const tensor *dy, tensor *dx) {
  check_same("sigmoid backward", y, dy);
  check_same("sigmoid backward", y, dx);
  cuk_sigmoid_backward(y->data, dy->data, dx->data, (int)y->dtype, tensor_count(y), cuda.stream);
}

static void sigmoid_bce(const tensor *logits, const float *targets, float grad_scale, tensor *grad,
                        double *scalars) {
  FP_CHECK(logits->h == 1 && logits->w == 1, "sigmoid BCE: logits must be [N,K,1,1]");
  if (grad) check_same("sigmoid BCE gradient", logits, grad);
  cuk_sigmoid_bce(logits->data, (int)logits->dtype, tensor_count(logits), targets, grad_scale,
                  grad ? grad->data : NULL, scalars, cuda.reduce_scratch, cuda.stream);
}

static void sigmoid_smooth_l1(const tensor *x, const float *targets, const float *mask,
                              float grad_scale, const float *grad_factor, tensor *grad,
                              double *scalars) {
  FP_CHECK(x->h == 1 && x->w == 1 && x->c % 4 == 0, "box loss: x must be [N,4K,1,1]");
  if (grad) check_same("box loss gradient", x, grad);
  cuk_sigmoid_smooth_l1(x->data, (int)x->dtype, tensor_count(x), targets, mask, grad_scale,
                        grad_factor, grad ? grad->data : NULL, scalars, cuda.reduce_scratch,
                        cuda.stream);
}

void cuda_fill_op_table(backend *table) {
  table->global_maxpool_forward = global_maxpool_forward;
  table->global_maxpool_backward = global_maxpool_backward;
  table->broadcast_plane = broadcast_plane;
  table->sum_plane = sum_plane;
  table->mul = mul;
  table->sigmoid_forward = sigmoid_forward;
  table->sigmoid_backward = sigmoid_backward;
  table->sigmoid_bce = sigmoid_bce;
  table->sigmoid_smooth_l1 = sigmoid_smooth_l1;
  table->batchnorm_forward_training = bn_forward_training;
  table->batchnorm_forward_inference = bn_forward_inference;
  table->batchnorm_fold = bn_fold;
  table->batchnorm_backward = bn_backward;
  table->batchnorm_update_running = bn_update_running;
  table->batchnorm_sync_moments = bn_sync_moments;
  table->batchnorm_sync_backward_terms = bn_sync_backward_terms;
  table->relu_forward = relu_forward;
  table->relu_backward = relu_backward;
  table->maxpool_forward = maxpool_forward;
  table->maxpool_backward = maxpool_backward;
  table->upsample2x_forward = upsample2x_forward;
  table->upsample2x_backward = upsample2x_backward;
  table->concat_channels = concat_channels;
  table->split_channels = split_channels;
  table->add = add;
  table->global_avgpool_forward = global_avgpool_forward;
  table->global_avgpool_backward = global_avgpool_backward;
  table->softmax_cross_entropy = softmax_cross_entropy;
  table->argmax_channels = argmax_channels;
  table->class_statistics = class_statistics;
  table->gradient_norm = gradient_norm;
  table->adam_update = adam_update;
}
