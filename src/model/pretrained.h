/* Starting weights from a file of named tensors (model.init): any subset of the model's
 * parameters and batch-norm statistics by PyTorch name, e.g. an ImageNet encoder converted with
 * docs/examples/convert_weights.py. */
#ifndef FP_PRETRAINED_H
#define FP_PRETRAINED_H

#include <stdio.h>

#include "unet.h"

typedef struct pretrained_report {
  int loaded;     /* tensors of the model found in the file, shapes equal, loaded */
  int missing;    /* tensors of the model the file does not have: keep their initialisation */
  int unexpected; /* tensors of the file the model does not have: ignored */
} pretrained_report;

/* Loads every tensor of FILE's /params/<name> and /buffers/<name> whose name the model has into
 * the model; a tensor with the model's name but another shape stops with an error naming the
 * file, the tensor and both shapes. Writes the counts and the names of the missing and the
 * unexpected tensors (the first few of each) to `log`. */
pretrained_report unet_load_pretrained(unet *m, const char *path, FILE *log);

#endif
