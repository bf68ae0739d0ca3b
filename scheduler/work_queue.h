/* Chunks of a job handed out to MPI ranks on demand.
 *
 * Rank 0 owns the list of chunks to do. Every rank, rank 0 included, calls
 * work_queue_next() for its next chunk, passing the report of the chunk it just
 * finished. On ranks other than 0 that is one MPI message to rank 0 (the report
 * and the request together) and one reply (the next chunk, or -1 when there is
 * none left). On rank 0 a service thread answers those requests as they come
 * (polling with MPI_Test every millisecond, so it costs no core), while rank 0's
 * own thread keeps working and takes its chunks from the same list under a
 * mutex. So a slow rank only ever holds the one chunk it is working on, and the
 * others take the rest. Every finished chunk's report reaches `on_done` on rank
 * 0, one call at a time, in whichever thread received it.
 *
 * WORK_STATIC assigns chunk i of the list to rank i mod size up front (the
 * same request/reply exchange carries the reports).
 *
 * MPI must be initialised with at least MPI_THREAD_SERIALIZED when there is
 * more than one rank, and rank 0's other threads must make no MPI calls between
 * work_queue_start and work_queue_finish. */
#ifndef FP_WORK_QUEUE_H
#define FP_WORK_QUEUE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

typedef enum work_mode { WORK_DYNAMIC, WORK_STATIC } work_mode;

/* Called on rank 0 for each finished chunk: the rank that did it and its report
 * (report_bytes bytes, as passed to work_queue_next). */
typedef void (*work_done_fn)(void *context, int rank, const void *report);

typedef struct work_queue work_queue;

/* Collective over comm. todo[todo_count] (read on rank 0 only) are the chunks to
 * hand out, in order. */
work_queue *work_queue_start(MPI_Comm comm, work_mode mode, const int64_t *todo, int64_t todo_count,
                             size_t report_bytes, work_done_fn on_done, void *context);
/* The next chunk for this rank, or -1 when there is none left. finished_report
 * is NULL on the first call, else the report of the chunk just finished. */
int64_t work_queue_next(work_queue *q, const void *finished_report);
/* Collective, after this rank's work_queue_next returned -1: rank 0 waits until
 * every rank has been told there is no more work and stops its service thread. */
void work_queue_finish(work_queue *q);

#endif
