/* Data-parallel gradient averaging: the model's one gradient buffer is cut into buckets from its
 * end (backward finishes the last layers first), and each bucket's all-reduce starts as soon as
 * unet_backward reports its gradients final, so communication overlaps the rest of backward. */
#ifndef FP_DATA_PARALLEL_H
#define FP_DATA_PARALLEL_H

#include <stddef.h>

#include "collective.h"
#include "unet.h"

typedef struct data_parallel data_parallel;

/* Installs the hooks in m->parallel (gradient buckets, the means synchronized BN takes, and the
 * ranks' agreement on device graphs).
 * bucket_floats: gradient floats per all-reduce. */
data_parallel *data_parallel_attach(unet *m, collective *comm, size_t bucket_floats);
void data_parallel_detach(data_parallel *dp);

/* Starts the buckets backward has not reported (none, after a full backward) and waits for every
 * all-reduce: the gradients backward computed (unet_trained_from on) are then the mean over ranks
 * for whatever reads them next (host memory: the host; device memory: the backend's stream, the
 * host not blocked). Call after unet_backward. A bucket that straddles a frozen encoder's
 * boundary also carries some of its (unused) gradients. */
void data_parallel_finish(data_parallel *dp);

#endif
