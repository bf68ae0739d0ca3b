/* Collectives over the ranks of a training or parsing job: all-reduce of a contiguous float
 * buffer (blocking or started now and waited on later, so communication overlaps compute),
 * broadcast and barrier. Two implementations behind one interface:
 *   - MPI, for buffers in host memory (CPU training, tests with several ranks on one machine);
 *   - NCCL, for buffers in GPU memory (one rank per GPU; the unique id is broadcast over MPI;
 *     device from OMPI_COMM_WORLD_LOCAL_RANK or SLURM_LOCALID). Built only with FP_HAVE_CUDA.
 * Every call checks the library's status and stops with file:line and the library's message. */
#ifndef FP_COLLECTIVE_H
#define FP_COLLECTIVE_H

#include <stddef.h>

typedef struct collective collective;
typedef struct collective_request collective_request; /* one outstanding all-reduce */

typedef enum collective_kind { COLLECTIVE_MPI, COLLECTIVE_NCCL } collective_kind;

/* Initialises MPI if needed (MPI_THREAD_FUNNELED or better) and the chosen implementation over
 * MPI_COMM_WORLD. A process started without mpirun is a world of one rank. */
collective *collective_init(collective_kind kind);
/* With several ranks in MPI_COMM_WORLD (MPI initialised): a fatal error on this rank prints
 * "rank N: error: ..." and MPI_Aborts the whole job, so that no rank waits forever for one that
 * died. collective_init does it; programs that use MPI without a collective (parse_catalog) call
 * it themselves. */
void collective_abort_job_on_fatal(void);
/* Finalises what collective_init started (and MPI, if it initialised it). */
void collective_destroy(collective *c);

int collective_rank(const collective *c);
int collective_size(const collective *c);
const char *collective_name(const collective *c); /* "mpi" or "nccl" */

/* In-place sum / mean over all ranks of count floats. */
void collective_allreduce_sum(collective *c, float *buffer, size_t count);
void collective_allreduce_mean(collective *c, float *buffer, size_t count);
/* Starts an in-place mean; requests complete in any order, each waited on exactly once.
 * MPI (host memory): buffer stays untouched until collective_wait returns, which is when the mean
 * is there. NCCL (device memory): collective_wait returns at once, having ordered the device
 * stream (collective_set_device_stream) after the reduction: device work queued on that stream
 * from then on sees the mean; work queued on it before the wait must not touch the buffer. Both
 * may be called while that stream records a CUDA graph (the communication stream joins the
 * capture; the wait joins it back), on every rank alike, as NCCL requires. */
collective_request *collective_allreduce_mean_start(collective *c, float *buffer, size_t count);
void collective_wait(collective *c, collective_request *request);

/* NCCL only; MPI ignores it. Added to the lead's interface because the NCCL calls run on a stream
 * of their own: each one first makes that stream wait for the work queued so far on the stream
 * given here (a cudaStream_t, on which the caller produces and consumes the buffers). Default: the
 * legacy default stream (0). */
void collective_set_device_stream(collective *c, void *cuda_stream);

/* Root's bytes to every rank (host memory for MPI; device memory for NCCL). */
void collective_broadcast(collective *c, void *buffer, size_t bytes, int root);
/* Host-memory helpers that both implementations provide over MPI: sums of doubles (metrics,
 * loss) and the all-ranks check that a value (e.g. a config hash) is identical. */
void collective_allreduce_sum_host_doubles(collective *c, double *values, size_t count);
int collective_all_equal_u64(collective *c, unsigned long long value);
int collective_min_host_int(collective *c, int value); /* the smallest value over the ranks */
void collective_barrier(collective *c);

#endif
