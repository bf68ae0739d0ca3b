/* The training loader on a synthetic dataset written with the dataset writer:
 * sharding (disjoint, covering, 1 rank x 2B == 2 ranks x B in order and in
 * pixels), split selection, limit, shuffling per epoch, normalisation,
 * augmentation alignment of photo and mask, no augmentation and augmentation
 * with every probability 0 giving identical tensors (flips only: the input or
 * its mirror), restart mid-epoch.
 *   test_loader WORK_DIR          runs the tests
 *   test_loader --open FILE       dataset_open only (used by dataset_validation.py) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment.h"
#include "check.h"
#include "dataset.h"
#include "loader.h"
#include "shard.h"

enum { N = 40, H = 48, W = 40, K = 3, TAG_ONLY = 7 };

static augment_settings all_on; /* every transform on (preset "all"), filled in by main */

static const uint8_t colours[K + 1][3] = {
    {70, 120, 180}, {180, 70, 90}, {90, 180, 70}, {128, 128, 128} /* under ignore (255) pixels */};
static const float mean[3] = {0.485f, 0.456f, 0.406f}, stdev[3] = {0.229f, 0.224f, 0.225f};

/* Image i: background 0, a disc of class 2 in the upper half and a rectangle
 * of class 1 in the lower half, placed by i, and an ignore band along the
 * top. No region is thinner than a few pixels, so nearest-neighbour masks
 * and bilinear photos agree on which labels meet where. */
static uint8_t label_at(int i, int y, int x) {
  if (y < 3) return 255;
  int cy = 12 + i % 6, cx = 12 + (i * 5) % 16;
  if ((y - cy) * (y - cy) + (x - cx) * (x - cx) < 49) return 2;
  if (y >= 26 + i % 6 && y < 44 && x >= 4 + i % 6 && x < 22 + i % 9) return 1;
  return 0;
}

/* An annotated file of N images, or a tag-only one of `count` (tags from the same masks). */
static void write_dataset(const char *path, int has_masks, int count) {
  static uint8_t image[H * W * 3], mask[H * W];
  char *names[K] = {"background", "shirt", "hat"};
  dataset_info info = {.height = H,
                       .width = W,
                       .num_classes = K,
                       .class_names = names,
                       .label_map = "test",
                       .source = "synthetic",
                       .tool_version = "test",
                       .has_masks = has_masks,
                       .image_compression = dataset_default_image_compression()};
  dataset_writer *writer = dataset_create(path, &info);
  for (int i = 0; i < count; i++) {
    uint8_t tags[K] = {0};
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        uint8_t label = label_at(i, y, x);
        mask[y * W + x] = label;
        memcpy(image + (y * W + x) * 3, colours[label == 255 ? K : label], 3);
        if (label != 255) tags[label] = 1;
      }
    char id[16];
    snprintf(id, sizeof id, "img%02d", i);
    dataset_item item = {.id = id,
                         .image = image,
                         .mask = has_masks ? mask : NULL,
                         .tags = tags,
                         .source_height = H,
                         .source_width = W,
                         .box = letterbox_fit(H, W, H, W)};
    dataset_append(writer, &item);
  }
  dataset_split_options split = {0.2, 0.1, 3};
  dataset_commit(writer, &split, NULL);
}

/* All indices (and, optionally, images) one rank sees over an epoch. */
typedef struct epoch_record {
  int64_t count;
  int64_t indices[N];
  float *images;  /* [count][3*H*W] when recorded */
  uint8_t *masks; /* [count][H*W] when recorded */
} epoch_record;

static void record_epoch(const char *path, int split, int batch, int rank, int ranks, int shuffle,
                         const augment_settings *augment, int epoch, int64_t limit,
                         epoch_record *r) {
  loader_config cfg = {.path = path,
                       .split = split,
                       .batch_size = batch,
                       .rank = rank,
                       .world_size = ranks,
                       .seed = 11,
                       .shuffle = shuffle,
                       .augment = augment,
                       .limit = limit};
  loader *l = loader_open(&cfg);
  loader_start_epoch(l, epoch);
  loader_batch b;
  r->count = 0;
  int64_t batches = 0;
  while (loader_next(l, &b)) {
    FP_CHECK(b.count == batch, "batch of %d, expected %d", b.count, batch);
    for (int j = 0; j < b.count; j++) {
      if (r->images)
        memcpy(r->images + r->count * 3 * H * W, b.images + (size_t)j * 3 * H * W,
               sizeof(float) * 3 * H * W);
      if (r->masks) memcpy(r->masks + r->count * H * W, b.masks + (size_t)j * H * W, H * W);
      r->indices[r->count++] = b.indices[j];
    }
    batches++;
  }
  FP_CHECK(batches == loader_batches_per_epoch(l), "%lld batches, expected %lld",
           (long long)batches, (long long)loader_batches_per_epoch(l));
  loader_close(l);
}

static void test_sharding(const char *path) {
  fp_dataset *ds = dataset_open(path);
  int64_t train = 0;
  for (int64_t i = 0; i < N; i++) train += dataset_split_of(ds, i) == 0;
  dataset_close(ds);
  for (int ranks = 1; ranks <= 4; ranks *= 2) {
    int seen[N] = {0};
    int64_t total = 0;
    for (int rank = 0; rank < ranks; rank++) {
      epoch_record r = {0};
      record_epoch(path, -1, 2, rank, ranks, 1, 0, 1, 0, &r);
      for (int64_t j = 0; j < r.count; j++) seen[r.indices[j]]++;
      total += r.count;
    }
    FP_CHECK(total == N / (2 * ranks) * 2 * ranks, "%d ranks: %lld images", ranks,
             (long long)total);
    for (int i = 0; i < N; i++)
      FP_CHECK(seen[i] == 1, "%d ranks: image %d seen %d times (disjoint and covering)", ranks, i,
               seen[i]);
  }
  /* 1 rank with batch 4 == ranks 0 and 1 with batch 2, batch by batch, pixels included. */
  static float one_images[N * 3 * H * W], two_images[2][N * 3 * H * W];
  epoch_record one = {.images = one_images},
               two[2] = {{.images = two_images[0]}, {.images = two_images[1]}};
  record_epoch(path, 0, 4, 0, 1, 1, &all_on, 2, 0, &one);
  for (int rank = 0; rank < 2; rank++)
    record_epoch(path, 0, 2, rank, 2, 1, &all_on, 2, 0, &two[rank]);
  FP_CHECK(one.count == train / 4 * 4 && two[0].count * 2 == one.count,
           "train %lld: 1 rank %lld, 2 ranks %lld each", (long long)train, (long long)one.count,
           (long long)two[0].count);
  for (int64_t p = 0; p < one.count; p++) {
    int rank = (int)(p % 4 / 2);
    int64_t q = p / 4 * 2 + p % 2;
    FP_CHECK(one.indices[p] == two[rank].indices[q], "position %lld: %lld vs rank %d %lld",
             (long long)p, (long long)one.indices[p], rank, (long long)two[rank].indices[q]);
    FP_CHECK(!memcmp(one.images + p * 3 * H * W, two[rank].images + q * 3 * H * W,
                     sizeof(float) * 3 * H * W),
             "position %lld: augmented pixels differ between 1 and 2 ranks", (long long)p);
  }
}

static void test_order_split_limit(const char *path) {
  fp_dataset *ds = dataset_open(path);
  epoch_record a = {0}, b = {0}, c = {0};
  record_epoch(path, 1, 1, 0, 1, 0, 0, 0, 0, &a);
  int64_t expected = 0;
  for (int64_t i = 0; i < N; i++)
    if (dataset_split_of(ds, i) == 1) {
      FP_CHECK(a.indices[expected] == i, "no shuffle: position %lld is %lld, expected %lld",
               (long long)expected, (long long)a.indices[expected], (long long)i);
      expected++;
    }
  FP_CHECK(a.count == expected && expected > 0, "val split: %lld of %lld", (long long)a.count,
           (long long)expected);
  record_epoch(path, 1, 1, 0, 1, 0, 0, 0, 3, &b);
  FP_CHECK(b.count == 3 && !memcmp(a.indices, b.indices, 3 * sizeof(int64_t)),
           "limit 3: %lld images", (long long)b.count);
  record_epoch(path, -1, 1, 0, 1, 1, 0, 0, 0, &a);
  record_epoch(path, -1, 1, 0, 1, 1, 0, 0, 0, &b);
  record_epoch(path, -1, 1, 0, 1, 1, 0, 1, 0, &c);
  FP_CHECK(!memcmp(a.indices, b.indices, sizeof a.indices), "same epoch, different order");
  FP_CHECK(memcmp(a.indices, c.indices, sizeof a.indices), "epochs 0 and 1 in the same order");
  dataset_close(ds);
}

static void test_normalisation_and_restart(const char *path) {
  loader_config cfg = {
      .path = path, .split = -1, .batch_size = 3, .world_size = 1, .seed = 5, .shuffle = 1};
  loader *l = loader_open(&cfg);
  fp_dataset *ds = dataset_open(path);
  static uint8_t image[H * W * 3], mask[H * W];
  loader_batch b;
  loader_start_epoch(l, 0);
  FP_CHECK(loader_next(l, &b), "no first batch");
  loader_start_epoch(l, 1); /* restart while the prefetch thread may be running */
  int batches = 0;
  while (loader_next(l, &b)) {
    batches++;
    for (int j = 0; j < b.count; j++) {
      dataset_read_image(ds, b.indices[j], image);
      dataset_read_mask(ds, b.indices[j], mask);
      FP_CHECK(!memcmp(mask, b.masks + (size_t)j * H * W, H * W), "mask of %lld differs",
               (long long)b.indices[j]);
      for (int c = 0; c < 3; c++)
        for (int p = 0; p < H * W; p++) {
          float want = (image[p * 3 + c] / 255.0f - mean[c]) / stdev[c];
          float got = b.images[((size_t)j * 3 + c) * H * W + p];
          FP_CHECK(fabsf(got - want) < 1e-5f, "pixel %d channel %d: %f, expected %f", p, c, got,
                   want);
        }
    }
  }
  FP_CHECK(batches == loader_batches_per_epoch(l) && batches == N / 3, "%d batches", batches);
  dataset_close(ds);
  loader_close(l);
}

static float jittered(const augment_params *p, int colour, int c) {
  float v = (float)(((colours[colour][c] / 255.0 - 0.5) * p->contrast + 0.5) * p->brightness);
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* Every labelled pixel has its label's colour (after the known colour jitter);
 * near label edges the colour lies between those of the labels around it. */
static void check_alignment(const loader_batch *b, int j, int epoch, int64_t *interior_checked,
                            int64_t *labelled, int *changed) {
  augment_params p = augment_draw(&all_on, 11, epoch, b->indices[j], H, W);
  const uint8_t *mask = b->masks + (size_t)j * H * W;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int label = mask[y * W + x];
      *changed += label != label_at((int)b->indices[j], y, x);
      if (label == 255) continue;
      (*labelled)++;
      int present[K + 2] = {0}; /* classes, ignore colour, fill (0) */
      for (int dy = -2; dy <= 2; dy++)
        for (int dx = -2; dx <= 2; dx++) {
          int yy = y + dy, xx = x + dx;
          int l = yy < 0 || yy >= H || xx < 0 || xx >= W ? 255 : mask[yy * W + xx];
          if (l == 255)
            present[K] = present[K + 1] = 1;
          else
            present[l] = 1;
        }
      int interior = present[label] && present[0] + present[1] + present[2] + present[K] == 1;
      for (int c = 0; c < 3; c++) {
        float v = b->images[((size_t)j * 3 + c) * H * W + y * W + x] * stdev[c] + mean[c];
        if (interior) {
          FP_CHECK(fabsf(v - jittered(&p, label, c)) < 2.5f / 255,
                   "image %lld (%d,%d) label %d: "
                   "colour %f, expected %f",
                   (long long)b->indices[j], y, x, label, v, jittered(&p, label, c));
          continue;
        }
        float low = 1, high = 0;
        for (int k = 0; k <= K; k++)
          if (present[k]) {
            low = fminf(low, jittered(&p, k, c));
            high = fmaxf(high, jittered(&p, k, c));
          }
        if (present[K + 1]) low = fminf(low, (float)((-0.5 * p.contrast + 0.5) * p.brightness));
        FP_CHECK(v > low - 2.5f / 255 && v < high + 2.5f / 255,
                 "image %lld (%d,%d): colour %f outside [%f, %f] of the labels around",
                 (long long)b->indices[j], y, x, v, low, high);
      }
      *interior_checked += interior;
    }
}

static void test_augmentation(const char *path) {
  loader_config cfg = {.path = path,
                       .split = -1,
                       .batch_size = 4,
                       .world_size = 1,
                       .seed = 11,
                       .shuffle = 1,
                       .augment = &all_on};
  loader *l = loader_open(&cfg);
  int64_t interior = 0, labelled = 0;
  int changed = 0;
  for (int epoch = 0; epoch < 2; epoch++) {
    loader_start_epoch(l, epoch);
    loader_batch b;
    while (loader_next(l, &b))
      for (int j = 0; j < b.count; j++)
        check_alignment(&b, j, epoch, &interior, &labelled, &changed);
  }
  loader_close(l);
  FP_CHECK(interior * 2 > labelled, "only %lld of %lld labelled pixels were interior",
           (long long)interior, (long long)labelled);
  FP_CHECK(changed > N * H * W / 10, "augmentation changed only %d mask pixels", changed);
  printf("augmentation: %lld labelled pixels checked, %lld interior\n", (long long)labelled,
         (long long)interior);
}

/* Augmentation with every probability 0 gives bit for bit the tensors of no augmentation; with
 * flips only each image is the unaugmented one or its exact mirror, about half of them mirrored. */
static void test_augmentation_off(const char *path) {
  static float plain_images[N * 3 * H * W], none_images[N * 3 * H * W], flip_images[N * 3 * H * W];
  static uint8_t plain_masks[N * H * W], none_masks[N * H * W], flip_masks[N * H * W];
  augment_settings none, flip;
  augment_preset("none", &none);
  augment_preset("flip", &flip);
  int flipped = 0, images = 0;
  for (int epoch = 0; epoch < 2; epoch++) {
    epoch_record plain = {.images = plain_images, .masks = plain_masks},
                 zero = {.images = none_images, .masks = none_masks},
                 flips = {.images = flip_images, .masks = flip_masks};
    record_epoch(path, -1, 4, 0, 1, 1, NULL, epoch, 0, &plain);
    record_epoch(path, -1, 4, 0, 1, 1, &none, epoch, 0, &zero);
    record_epoch(path, -1, 4, 0, 1, 1, &flip, epoch, 0, &flips);
    FP_CHECK(plain.count == zero.count && plain.count == flips.count &&
                 !memcmp(plain.indices, zero.indices, sizeof plain.indices) &&
                 !memcmp(plain.indices, flips.indices, sizeof plain.indices),
             "epoch %d: augmentation changed the image order", epoch);
    FP_CHECK(!memcmp(plain_images, none_images, sizeof(float) * 3 * H * W * plain.count) &&
                 !memcmp(plain_masks, none_masks, (size_t)H * W * plain.count),
             "epoch %d: every probability 0 is not bit-identical to no augmentation", epoch);
    for (int64_t p = 0; p < plain.count; p++) {
      const float *a = plain_images + p * 3 * H * W, *b = flip_images + p * 3 * H * W;
      const uint8_t *ma = plain_masks + p * H * W, *mb = flip_masks + p * H * W;
      int same = !memcmp(a, b, sizeof(float) * 3 * H * W) && !memcmp(ma, mb, H * W), mirrored = 1;
      for (int y = 0; y < H && mirrored; y++)
        for (int x = 0; x < W; x++)
          if (ma[y * W + x] != mb[y * W + W - 1 - x]) {
            mirrored = 0;
            break;
          }
      for (int c = 0; c < 3 && mirrored; c++)
        for (int y = 0; y < H && mirrored; y++)
          for (int x = 0; x < W; x++)
            if (memcmp(&a[(c * H + y) * W + x], &b[(c * H + y) * W + W - 1 - x], sizeof *a)) {
              mirrored = 0;
              break;
            }
      augment_params d = augment_draw(&flip, 11, epoch, plain.indices[p], H, W);
      FP_CHECK(d.flip ? mirrored : same, "epoch %d image %lld: flip %d but the image is %s", epoch,
               (long long)plain.indices[p], d.flip,
               same       ? "unchanged"
               : mirrored ? "mirrored"
                          : "neither");
      flipped += d.flip;
      images++;
    }
  }
  FP_CHECK(flipped > images / 5 && flipped < images * 4 / 5, "flips only: %d of %d flipped",
           flipped, images);
  printf("augmentation off: probabilities 0 identical to none; flips only mirrored %d of %d\n",
         flipped, images);
}

/* A tag-only file joins the epoch: every image of both files once per epoch, the tag-only ones
 * flagged, with masks of the ignore label and their tags; the annotated ones as without it. */
static void test_tag_only(const char *path, const char *tags_path) {
  loader_config cfg = {.path = path,
                       .split = -1,
                       .batch_size = 4,
                       .world_size = 1,
                       .seed = 3,
                       .shuffle = 1,
                       .tags_path = tags_path};
  loader *l = loader_open(&cfg);
  FP_CHECK(loader_images(l) == N + TAG_ONLY && loader_tag_only_images(l) == TAG_ONLY,
           "tag-only: %lld images, %lld tag-only", (long long)loader_images(l),
           (long long)loader_tag_only_images(l));
  fp_dataset *ds = dataset_open(path), *tag_ds = dataset_open(tags_path);
  int seen[N + TAG_ONLY] = {0}, images = 0;
  static uint8_t mask[H * W], ignore[H * W];
  memset(ignore, DATASET_IGNORE_LABEL, sizeof ignore);
  uint8_t tags[K], none[K] = {0};
  loader_batch b;
  loader_start_epoch(l, 0);
  while (loader_next(l, &b))
    for (int j = 0; j < b.count; j++, images++) {
      int64_t row = b.indices[j];
      const uint8_t *got_mask = b.masks + (size_t)j * H * W, *got_tags = b.tags + (size_t)j * K;
      if (b.tag_only[j]) {
        seen[N + row]++;
        dataset_read_tags(tag_ds, row, tags);
        FP_CHECK(!memcmp(got_mask, ignore, sizeof ignore) && !memcmp(got_tags, tags, K),
                 "tag-only row %lld: mask not all ignore label, or tags differ", (long long)row);
      } else {
        seen[row]++;
        dataset_read_mask(ds, row, mask);
        FP_CHECK(!memcmp(got_mask, mask, sizeof mask) && !memcmp(got_tags, none, K),
                 "annotated row %lld: mask differs, or tags set", (long long)row);
      }
    }
  int64_t expected = (N + TAG_ONLY) / 4 * 4; /* the last partial batch is dropped */
  FP_CHECK(images == expected, "tag-only: %d images in the epoch, expected %lld", images,
           (long long)expected);
  for (int i = 0; i < N + TAG_ONLY; i++)
    FP_CHECK(seen[i] <= 1, "image %d (%s) seen %d times", i, i < N ? "annotated" : "tag-only",
             seen[i]);
  dataset_close(ds);
  dataset_close(tag_ds);
  loader_close(l);
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--open")) {
    fp_dataset *ds = dataset_open(argv[2]);
    printf("%s: %lld images %dx%d, %d classes, masks %d\n", argv[2], (long long)dataset_count(ds),
           dataset_height(ds), dataset_width(ds), dataset_num_classes(ds), dataset_has_masks(ds));
    dataset_close(ds);
    return 0;
  }
  FP_CHECK(argc == 2, "usage: test_loader WORK_DIR | test_loader --open FILE");
  char path[2048];
  char tags_path[2048];
  snprintf(path, sizeof path, "%s/loader.h5", argv[1]);
  snprintf(tags_path, sizeof tags_path, "%s/loader_tags.h5", argv[1]);
  FP_CHECK(augment_preset("all", &all_on), "no preset all");
  write_dataset(path, 1, N);
  write_dataset(tags_path, 0, TAG_ONLY);
  test_sharding(path);
  test_order_split_limit(path);
  test_normalisation_and_restart(path);
  test_augmentation(path);
  test_augmentation_off(path);
  test_tag_only(path, tags_path);
  printf("loader ok\n");
  return 0;
}
