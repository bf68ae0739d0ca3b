/* The PyTorch twin's dump (tests/twin/unet_twin.py), read through one handle in either of its two
 * formats: a tensor directory, DUMP.twin/ (no library; the format is described at the top of
 * twin_dump.c), or HDF5 (only when built with FP_HAVE_HDF5). Names are paths from the dump's root,
 * with or without the leading '/': "loss", "peer_bf16/grads/encoder.conv1.weight". Every error
 * is fatal and names the dump and the item. */
#ifndef FP_TWIN_DUMP_H
#define FP_TWIN_DUMP_H

#include <stddef.h>
#include <stdint.h>

#include "unet.h"

typedef struct twin_dump twin_dump;

/* A directory, or a path ending in ".twin", is a tensor directory; anything else is HDF5. */
twin_dump *twin_dump_open(const char *path);
void twin_dump_close(twin_dump *dump);

/* Dataset `name` (float32 or float64 in the dump) as floats; its element count must be `count`.
 * Returns 0, or -1 if the dump has no such dataset. */
int twin_dump_read_floats(twin_dump *dump, const char *name, float *out, size_t count);
/* Dataset `name` of unsigned bytes (the labels), `count` of them. Returns 0, or -1 if absent. */
int twin_dump_read_u8(twin_dump *dump, const char *name, uint8_t *out, size_t count);

/* The root's attributes; a missing one is an error. */
long twin_dump_attr_long(twin_dump *dump, const char *name);
double twin_dump_attr_double(twin_dump *dump, const char *name);
/* Into out (cap bytes, terminating NUL included). */
void twin_dump_attr_string(twin_dump *dump, const char *name, char *out, size_t cap);

/* Every tensor of `list` from group/<tensor name> into host, at each tensor's offset. A missing
 * tensor is an error naming the dump and the tensor. */
void twin_dump_read_tensor_list(twin_dump *dump, const char *group, const tensor_list *list,
                                float *host);

#endif
