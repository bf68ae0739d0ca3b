/* One HDF5 lock for the process: a loader's prefetch thread reads a dataset while the main
 * thread saves and reads back checkpoints, as train does when a signal's save or an epoch's end
 * meets the prefetch of the next batches. Debian's HDF5 is not thread-safe; before the lock was
 * shared, the dataset reader's private lock left checkpoint I/O racing with it.
 *   test_hdf5_lock WORK_DIR */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "checkpoint.h"
#include "dataset.h"
#include "loader.h"
#include "resize.h"
#include "test_backend.h"
#include "unet.h"

enum { IMAGES = 48, SIZE = 64, CLASSES = 3, EPOCHS = 4, SAVE_EVERY = 24 };

static void write_dataset(const char *path) {
  static uint8_t image[SIZE * SIZE * 3], mask[SIZE * SIZE];
  char *names[CLASSES] = {"background", "shirt", "hat"};
  dataset_info info = {.height = SIZE,
                       .width = SIZE,
                       .num_classes = CLASSES,
                       .class_names = names,
                       .label_map = "test",
                       .source = "synthetic",
                       .tool_version = "test",
                       .has_masks = 1,
                       .image_compression = dataset_default_image_compression()};
  dataset_writer *writer = dataset_create(path, &info);
  for (int i = 0; i < IMAGES; i++) {
    uint8_t tags[CLASSES] = {1, 1, 0};
    for (int p = 0; p < SIZE * SIZE; p++) {
      mask[p] = (uint8_t)((p / SIZE + i) % 2);
      memset(image + 3 * p, 40 * mask[p] + i, 3);
    }
    char id[16];
    snprintf(id, sizeof id, "img%02d", i);
    dataset_item item = {.id = id,
                         .image = image,
                         .mask = mask,
                         .tags = tags,
                         .source_height = SIZE,
                         .source_width = SIZE,
                         .box = letterbox_fit(SIZE, SIZE, SIZE, SIZE)};
    dataset_append(writer, &item);
  }
  dataset_split_options split = {0.0, 0.0, 1};
  dataset_commit(writer, &split, NULL);
}

int main(int argc, char **argv) {
  FP_CHECK(argc == 2, "usage: test_hdf5_lock WORK_DIR");
  char data[1024], saved[1024];
  snprintf(data, sizeof data, "%s/lock.h5", argv[1]);
  snprintf(saved, sizeof saved, "%s/lock_checkpoint.h5", argv[1]);
  write_dataset(data);
  unet_config config = {.arch = UNET_R18,
                        .classes = CLASSES,
                        .batch = 1,
                        .height = SIZE,
                        .width = SIZE,
                        .compute = FP_F32,
                        .mode = UNET_INFERENCE};
  unet *m = unet_create(test_backend(), &config, 1);
  loader_config lc = {
      .path = data, .batch_size = 1, .world_size = 1, .seed = 7, .shuffle = 1, .pad_label = 255};
  loader *ld = loader_open(&lc);
  long batches = 0;
  checkpoint_info info = {.arch = UNET_R18, .classes = CLASSES, .height = SIZE, .width = SIZE};
  checkpoint_save(saved, m, NULL, &info, "", NULL);
  for (int epoch = 0; epoch < EPOCHS; epoch++) {
    loader_start_epoch(ld, epoch);
    loader_batch batch;
    /* each batch taken frees a slot the prefetch thread refills while the checkpoint I/O runs */
    while (loader_next(ld, &batch)) {
      if (++batches % SAVE_EVERY == 0) {
        info.step = batches;
        checkpoint_save(saved, m, NULL, &info, "", NULL);
      }
      FP_CHECK(checkpoint_peek(saved).step == info.step, "%s: step read back", saved);
    }
  }
  loader_close(ld);
  unet_destroy(m);
  printf("%ld checkpoint saves and %ld reads while the loader read as many batches: ok\n",
         batches / SAVE_EVERY + 1, batches);
  return 0;
}
