/* CPU backend: what oneDNN lacks, as threaded loops: the weighted softmax cross-entropy and
 * argmax over channels (in f32 whatever the logits' dtype), parse_catalog's class sums, the
 * gradient norm and Adam. */
#include <math.h>

#include "class_sums.h"
#include "cpu_internal.h"

/* Logits arrive in the stored layout and type; the loss kernels read plain f32 NCHW. */
static const float *logits_as_nchw(const tensor *logits) {
  return cpu_plain_input(logits, CPU_WS_INPUT);
}

enum { PIXEL_TILE = 64 };

/* One tile of up to PIXEL_TILE neighbouring pixels of one image, so that every
 * inner loop runs over contiguous pixels and vectorises. grad (may be NULL)
 * receives weight * (softmax - onehot), unnormalised. Each exp is computed once: with a grad,
 * the sum's pass leaves exp(x - max) there for the gradient's pass (x is read at each element
 * before that element is written, so grad may even be x's own memory). */
static void loss_tile(const float *x, const uint8_t *labels, size_t plane, int classes, int count,
                      const float *class_weights, int ignore_label, float *grad,
                      double *weighted_nll, double *weight_sum) {
  float max_logit[PIXEL_TILE], sum[PIXEL_TILE], weight[PIXEL_TILE], label_logit[PIXEL_TILE];
  for (int i = 0; i < count; i++) max_logit[i] = x[i];
  for (int k = 1; k < classes; k++)
    for (int i = 0; i < count; i++) {
      float logit = x[k * plane + i];
      max_logit[i] = logit > max_logit[i] ? logit : max_logit[i];
    }
  for (int i = 0; i < count; i++) {
    int label = labels[i];
    weight[i] = label == ignore_label ? 0.0f : class_weights[label];
    label_logit[i] = label == ignore_label ? 0.0f : x[label * plane + i];
    sum[i] = 0.0f;
  }
  for (int k = 0; k < classes; k++)
    for (int i = 0; i < count; i++) {
      float e = expf(x[k * plane + i] - max_logit[i]);
      sum[i] += e;
      if (grad) grad[k * plane + i] = e;
    }
  for (int i = 0; i < count; i++) {
    if (labels[i] == ignore_label) continue;
    float nll = logf(sum[i]) - (label_logit[i] - max_logit[i]);
    *weighted_nll += (double)weight[i] * nll;
    *weight_sum += weight[i];
  }
  if (!grad) return;
  for (int k = 0; k < classes; k++)
    for (int i = 0; i < count; i++)
      grad[k * plane + i] = weight[i] * (grad[k * plane + i] / sum[i]);
  for (int i = 0; i < count; i++)
    if (labels[i] != ignore_label) grad[labels[i] * plane + i] -= weight[i];
}

/* Tile t of images whose planes hold `plane` pixels each: its image, first pixel in the plane
 * and pixel count (the last tile of a plane may be partial). */
typedef struct pixel_tile {
  size_t image, first;
  int count;
} pixel_tile;

static size_t tiles_per_plane(size_t plane) {
  return (plane + PIXEL_TILE - 1) / PIXEL_TILE;
}

static pixel_tile tile_at(size_t t, size_t plane) {
  pixel_tile tile = {t / tiles_per_plane(plane), (t % tiles_per_plane(plane)) * PIXEL_TILE, 0};
  tile.count = (int)(plane - tile.first < PIXEL_TILE ? plane - tile.first : PIXEL_TILE);
  return tile;
}

static void scale_floats(float *x, size_t count, float factor) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < count; i++) x[i] *= factor;
}

void cpu_softmax_cross_entropy(const tensor *logits, const uint8_t *labels,
                               const float *class_weights, int ignore_label, float grad_scale,
                               const float *grad_factor, tensor *grad_logits, double *scalars) {
  const int classes = logits->c;
  const size_t plane = (size_t)logits->h * logits->w;
  const size_t pixels = plane * logits->n;
  for (size_t p = 0; p < pixels; p++)
    FP_CHECK(labels[p] == ignore_label || labels[p] < classes,
             "label %d at pixel %zu is outside the %d classes", labels[p], p, classes);
  const float *x = logits_as_nchw(logits);
  dnnl_memory_desc_t plain = plain_md(logits, FP_F32), grad_stored = plain;
  float *grad = NULL;
  if (grad_logits) {
    FP_CHECK(FP_SAME_SHAPE(logits, grad_logits), "loss: gradient and logits differ in shape");
    grad_stored = activation_md(grad_logits);
    grad = dnnl_memory_desc_equal(&plain, &grad_stored)
               ? grad_logits->data
               : cpu_workspace(CPU_WS_OUTPUT, tensor_count(logits) * sizeof(float));
  }
  const size_t tiles = tiles_per_plane(plane) * logits->n;
  double weighted_nll = 0.0, weight_sum = 0.0;
#pragma omp parallel for reduction(+ : weighted_nll, weight_sum) schedule(static)
  for (size_t t = 0; t < tiles; t++) {
    pixel_tile tile = tile_at(t, plane);
    size_t offset = tile.image * classes * plane + tile.first;
    loss_tile(x + offset, labels + tile.image * plane + tile.first, plane, classes, tile.count,
              class_weights, ignore_label, grad ? grad + offset : NULL, &weighted_nll, &weight_sum);
  }
  scalars[SCALAR_LOSS] = weight_sum > 0.0 ? weighted_nll / weight_sum : 0.0;
  scalars[SCALAR_LOSS_WEIGHT] = weight_sum;
  scalars[SCALAR_BAD_LABELS] = 0.0; /* checked above */
  if (grad) {
    /* one rounding of (1/weight_sum) * grad_scale, then one multiply, as before the scale
     * existed when grad_scale is 1 */
    float factor = weight_sum > 0.0 ? (float)(1.0 / weight_sum) : 0.0f;
    scale_floats(grad, tensor_count(logits), factor);
    if (grad_factor) grad_scale *= *grad_factor;
    if (grad_scale != 1.0f) scale_floats(grad, tensor_count(logits), grad_scale);
    if (grad != grad_logits->data) reorder(&plain, grad, &grad_stored, grad_logits->data);
  }
}

/* The confidence's sum leaves out the classes more than 32 below the largest logit (and those at
 * -inf): at most 255 terms under e^-32 each, 4e-12 of a sum of at least 1, which moves the float
 * sum only where it lies that close to a rounding boundary, by one ulp. Each such expf cost as
 * much as any other, and those below -87 (subnormal results) went through glibc's slow path. */
#define CONFIDENCE_SKIP_BELOW (-32.0f)

/* The argmax over the channels of one tile of up to PIXEL_TILE neighbouring pixels (the first
 * channel wins ties) and, when confidence is not NULL, the softmax probability of that channel,
 * summed over the channels in order. Every inner loop runs over contiguous pixels: walking one
 * pixel through its channels, `plane` floats apart, took 1.7x as long (perf, r34 inference). */
static void argmax_tile(const float *x, size_t plane, int classes, int count, uint8_t *predictions,
                        float *confidence) {
  float largest[PIXEL_TILE], sum[PIXEL_TILE];
  int best[PIXEL_TILE];
  for (int i = 0; i < count; i++) {
    largest[i] = x[i];
    best[i] = 0;
  }
  for (int k = 1; k < classes; k++) {
    const float *row = x + k * plane;
    for (int i = 0; i < count; i++) {
      int better = row[i] > largest[i];
      largest[i] = better ? row[i] : largest[i];
      best[i] = better ? k : best[i];
    }
  }
  for (int i = 0; i < count; i++) predictions[i] = (uint8_t)best[i];
  if (!confidence) return;
  for (int i = 0; i < count; i++) sum[i] = 0.0f;
  for (int k = 0; k < classes; k++)
    for (int i = 0; i < count; i++) {
      float below_largest = x[k * plane + i] - largest[i];
      if (!(below_largest < CONFIDENCE_SKIP_BELOW)) sum[i] += expf(below_largest); /* NaN kept */
    }
  for (int i = 0; i < count; i++) confidence[i] = 1.0f / sum[i];
}

void cpu_argmax_channels(const tensor *logits, uint8_t *predictions, float *confidence) {
  const int classes = logits->c;
  const size_t plane = (size_t)logits->h * logits->w;
  const float *x = logits_as_nchw(logits);
  const size_t tiles = tiles_per_plane(plane) * logits->n;
#pragma omp parallel for schedule(static)
  for (size_t t = 0; t < tiles; t++) {
    pixel_tile tile = tile_at(t, plane);
    size_t pixel = tile.image * plane + tile.first;
    argmax_tile(x + tile.image * classes * plane + tile.first, plane, classes, tile.count,
                predictions + pixel, confidence ? confidence + pixel : NULL);
  }
}

/* One image's sums; the image's pixels in row order, so its sums are the same every run. */
static void image_class_sums(uint8_t *prediction, const float *confidence, const uint8_t *photo,
                             const float *box, const float *linear, int height, int width,
                             int classes, uint8_t outside_label, double *sums) {
  const int top = (int)box[0], left = (int)box[1], bottom = (int)box[2], right = (int)box[3];
  for (int k = 0; k < classes; k++) {
    double *row = sums + (size_t)k * CLASS_SUMS;
    for (int i = 0; i < CLASS_SUMS; i++) row[i] = 0.0;
    row[CLASS_SUM_TOP] = row[CLASS_SUM_LEFT] = INFINITY;
  }
  for (int y = 0; y < height; y++) {
    for (int x = 0; x < width; x++) {
      size_t p = (size_t)y * width + x;
      if (y < top || y >= bottom || x < left || x >= right) {
        prediction[p] = outside_label;
        continue;
      }
      int k = prediction[p];
      FP_CHECK(k < classes, "class statistics: class %d at pixel %zu of %d classes", k, p, classes);
      double *row = sums + (size_t)k * CLASS_SUMS;
      row[CLASS_SUM_PIXELS] += 1.0;
      row[CLASS_SUM_CONFIDENCE] += confidence[p];
      for (int c = 0; c < 3; c++) row[CLASS_SUM_LINEAR_R + c] += linear[photo[p * 3 + c]];
      row[CLASS_SUM_TOP] = fmin(row[CLASS_SUM_TOP], y);
      row[CLASS_SUM_LEFT] = fmin(row[CLASS_SUM_LEFT], x);
      row[CLASS_SUM_BOTTOM] = fmax(row[CLASS_SUM_BOTTOM], y + 1);
      row[CLASS_SUM_RIGHT] = fmax(row[CLASS_SUM_RIGHT], x + 1);
    }
  }
  for (int k = 0; k < classes; k++) {
    double *row = sums + (size_t)k * CLASS_SUMS;
    if (row[CLASS_SUM_PIXELS] == 0.0) row[CLASS_SUM_TOP] = row[CLASS_SUM_LEFT] = 0.0;
  }
}

void cpu_class_statistics(uint8_t *predictions, const float *confidence, const uint8_t *photos,
                          const float *boxes, const float *linear, int batch, int height, int width,
                          int classes, uint8_t outside_label, double *sums) {
  const size_t plane = (size_t)height * width;
#pragma omp parallel for schedule(dynamic, 1)
  for (int b = 0; b < batch; b++)
    image_class_sums(predictions + b * plane, confidence + b * plane, photos + b * plane * 3,
                     boxes + (size_t)b * 4, linear, height, width, classes, outside_label,
                     sums + (size_t)b * classes * CLASS_SUMS);
}

/* -------------------------------------------------------------- optimiser */

void cpu_gradient_norm(const float *grads, size_t count, double clip_norm, double loss_scale,
                       double *scalars) {
  double sum = 0.0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
  for (size_t i = 0; i < count; i++) sum += (double)grads[i] * grads[i];
  double norm = sqrt(sum) / loss_scale;
  scalars[SCALAR_GRAD_NORM] = norm;
  scalars[SCALAR_NONFINITE] = isfinite(norm) ? 0.0 : 1.0;
  double clip =
      clip_norm > 0.0 && norm > clip_norm ? (double)(float)(clip_norm / (norm + 1e-6)) : 1.0;
  scalars[SCALAR_CLIP_FACTOR] = clip / loss_scale;
}

/* Same arithmetic, in the same order, as torch.optim.Adam/AdamW (1.13), on gradients multiplied
 * by the clip factor as clip_grad_norm_ multiplies them in place. */
void cpu_adam_update(float *params, const float *grads, float *exp_avg, float *exp_avg_sq,
                     size_t count, const adam_config *cfg, const double *scalars) {
  if (scalars[SCALAR_NONFINITE] != 0.0) return;
  const float lr = (float)scalars[SCALAR_LR], clip = (float)scalars[SCALAR_CLIP_FACTOR];
  const float step = (float)scalars[SCALAR_STEP];
  const float beta1 = cfg->beta1, beta2 = cfg->beta2, eps = cfg->eps;
  const float bias_correction1 = 1.0f - powf(beta1, step);
  const float bias_correction2_sqrt = sqrtf(1.0f - powf(beta2, step));
  const float step_size = lr / bias_correction1;
  const float decay = cfg->decoupled_weight_decay ? 1.0f - lr * cfg->weight_decay : 1.0f;
  const float l2 = cfg->decoupled_weight_decay ? 0.0f : cfg->weight_decay;
  const int clipped = clip != 1.0f;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < count; i++) {
    float p = params[i] * decay;
    float g = (clipped ? grads[i] * clip : grads[i]) + l2 * params[i];
    float m = exp_avg[i] * beta1 + (1.0f - beta1) * g;
    float v = exp_avg_sq[i] * beta2 + (1.0f - beta2) * g * g;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    params[i] = p - step_size * (m / (sqrtf(v) / bias_correction2_sqrt + eps));
  }
}
