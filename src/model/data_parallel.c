#include "data_parallel.h"

#include <stdlib.h>

#include "check.h"

typedef struct bucket {
  size_t begin, end; /* gradient offsets */
  collective_request *request;
} bucket;

struct data_parallel {
  unet *model;
  collective *comm;
  bucket *buckets; /* buckets[0] holds the end of the buffer, which backward finishes first */
  int bucket_count;
  int started; /* buckets[0..started) have their all-reduce in flight */
};

static void start_next_bucket(data_parallel *dp) {
  bucket *b = &dp->buckets[dp->started++];
  b->request =
      collective_allreduce_mean_start(dp->comm, dp->model->grads + b->begin, b->end - b->begin);
}

static void start_ready_buckets(void *ctx, size_t final_from) {
  data_parallel *dp = ctx;
  while (dp->started < dp->bucket_count && dp->buckets[dp->started].begin >= final_from)
    start_next_bucket(dp);
}

static void mean_across_ranks(void *ctx, float *values, size_t count) {
  data_parallel *dp = ctx;
  collective_wait(dp->comm, collective_allreduce_mean_start(dp->comm, values, count));
}

static int smallest_across_ranks(void *ctx, int value) {
  data_parallel *dp = ctx;
  return collective_min_host_int(dp->comm, value);
}

data_parallel *data_parallel_attach(unet *m, collective *comm, size_t bucket_floats) {
  FP_CHECK(bucket_floats > 0, "data parallel: bucket size 0");
  data_parallel *dp = fp_calloc(1, sizeof *dp);
  dp->model = m;
  dp->comm = comm;
  size_t total = m->param_list.total;
  dp->bucket_count = (int)((total + bucket_floats - 1) / bucket_floats);
  dp->buckets = fp_calloc((size_t)dp->bucket_count, sizeof *dp->buckets);
  for (int i = 0; i < dp->bucket_count; i++) {
    size_t end = total - (size_t)i * bucket_floats;
    dp->buckets[i].end = end;
    dp->buckets[i].begin = end > bucket_floats ? end - bucket_floats : 0;
  }
  m->parallel = (unet_parallel){dp, start_ready_buckets, mean_across_ranks, smallest_across_ranks,
                                collective_size(comm)};
  return dp;
}

void data_parallel_finish(data_parallel *dp) {
  size_t needed_from = unet_trained_from(dp->model);
  while (dp->started < dp->bucket_count && dp->buckets[dp->started].end > needed_from)
    start_next_bucket(dp);
  for (int i = 0; i < dp->started; i++) collective_wait(dp->comm, dp->buckets[i].request);
  dp->started = 0;
}

void data_parallel_detach(data_parallel *dp) {
  if (!dp) return;
  dp->model->parallel = (unet_parallel){0};
  free(dp->buckets);
  free(dp);
}
