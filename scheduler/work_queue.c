#include "work_queue.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "mpi_check.h"

enum { TAG_REQUEST = 7101, TAG_REPLY = 7102 };

struct work_queue {
  MPI_Comm comm;
  int rank, size;
  work_mode mode;
  int64_t *todo, todo_count;
  int64_t next_position;   /* WORK_DYNAMIC: next index into todo */
  int64_t *handed_to_rank; /* WORK_STATIC: chunks handed to each rank so far */
  size_t report_bytes;
  work_done_fn on_done;
  void *context;
  pthread_mutex_t lock;
  pthread_t service;
  int service_running;
  /* A request: int64 has_report, then the report. */
  size_t message_bytes;
  unsigned char *message;
};

/* The next chunk for `rank`, or -1; under q->lock. */
static int64_t take(work_queue *q, int rank) {
  if (q->mode == WORK_DYNAMIC)
    return q->next_position < q->todo_count ? q->todo[q->next_position++] : -1;
  int64_t position = rank + q->handed_to_rank[rank] * q->size;
  if (position >= q->todo_count) return -1;
  q->handed_to_rank[rank]++;
  return q->todo[position];
}

static void sleep_a_millisecond(void) {
  struct timespec pause = {0, 1000000};
  nanosleep(&pause, NULL);
}

/* Rank 0: answers every other rank's requests until each has been told -1. */
static void *serve(void *arg) {
  work_queue *q = arg;
  int ranks_working = q->size - 1;
  unsigned char *request = fp_malloc(q->message_bytes);
  while (ranks_working > 0) {
    MPI_Request pending;
    MPI_Status status;
    MPI_CHECK(MPI_Irecv(request, (int)q->message_bytes, MPI_BYTE, MPI_ANY_SOURCE, TAG_REQUEST,
                        q->comm, &pending));
    for (int arrived = 0;;) {
      MPI_CHECK(MPI_Test(&pending, &arrived, &status));
      if (arrived) break;
      sleep_a_millisecond();
    }
    int64_t has_report;
    memcpy(&has_report, request, sizeof has_report);
    FP_CHECK(pthread_mutex_lock(&q->lock) == 0, "pthread_mutex_lock");
    if (has_report) q->on_done(q->context, status.MPI_SOURCE, request + sizeof has_report);
    int64_t next = take(q, status.MPI_SOURCE);
    FP_CHECK(pthread_mutex_unlock(&q->lock) == 0, "pthread_mutex_unlock");
    MPI_CHECK(MPI_Send(&next, 1, MPI_INT64_T, status.MPI_SOURCE, TAG_REPLY, q->comm));
    if (next < 0) ranks_working--;
  }
  free(request);
  return NULL;
}

work_queue *work_queue_start(MPI_Comm comm, work_mode mode, const int64_t *todo, int64_t todo_count,
                             size_t report_bytes, work_done_fn on_done, void *context) {
  work_queue *q = fp_calloc(1, sizeof *q);
  q->comm = comm;
  q->mode = mode;
  MPI_CHECK(MPI_Comm_rank(comm, &q->rank));
  MPI_CHECK(MPI_Comm_size(comm, &q->size));
  q->report_bytes = report_bytes;
  q->message_bytes = sizeof(int64_t) + report_bytes;
  q->message = fp_calloc(1, q->message_bytes);
  q->on_done = on_done;
  q->context = context;
  FP_CHECK(pthread_mutex_init(&q->lock, NULL) == 0, "pthread_mutex_init");
  if (q->rank != 0) return q;
  q->todo_count = todo_count;
  q->todo = fp_malloc((size_t)(todo_count > 0 ? todo_count : 1) * sizeof *q->todo);
  if (todo_count > 0) memcpy(q->todo, todo, (size_t)todo_count * sizeof *q->todo);
  q->handed_to_rank = fp_calloc((size_t)q->size, sizeof *q->handed_to_rank);
  if (q->size > 1) {
    int provided;
    MPI_CHECK(MPI_Query_thread(&provided));
    FP_CHECK(provided >= MPI_THREAD_SERIALIZED,
             "work queue: MPI gives thread level %d; rank 0's service thread needs at least "
             "MPI_THREAD_SERIALIZED",
             provided);
    FP_CHECK(pthread_create(&q->service, NULL, serve, q) == 0, "pthread_create");
    q->service_running = 1;
  }
  return q;
}

int64_t work_queue_next(work_queue *q, const void *finished_report) {
  if (q->rank == 0) {
    FP_CHECK(pthread_mutex_lock(&q->lock) == 0, "pthread_mutex_lock");
    if (finished_report) q->on_done(q->context, 0, finished_report);
    int64_t next = take(q, 0);
    FP_CHECK(pthread_mutex_unlock(&q->lock) == 0, "pthread_mutex_unlock");
    return next;
  }
  int64_t has_report = finished_report != NULL;
  memcpy(q->message, &has_report, sizeof has_report);
  if (finished_report) memcpy(q->message + sizeof has_report, finished_report, q->report_bytes);
  MPI_CHECK(MPI_Send(q->message, (int)q->message_bytes, MPI_BYTE, 0, TAG_REQUEST, q->comm));
  int64_t next;
  MPI_CHECK(MPI_Recv(&next, 1, MPI_INT64_T, 0, TAG_REPLY, q->comm, MPI_STATUS_IGNORE));
  return next;
}

void work_queue_finish(work_queue *q) {
  if (q->service_running) FP_CHECK(pthread_join(q->service, NULL) == 0, "pthread_join");
  MPI_CHECK(MPI_Barrier(q->comm));
  pthread_mutex_destroy(&q->lock);
  free(q->todo);
  free(q->handed_to_rank);
  free(q->message);
  free(q);
}
