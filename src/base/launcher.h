/* The rank's index among the ranks on its node, as the launcher tells it: the one definition for
 * choosing a rank's GPU (the CUDA backend, the NCCL collective). */
#ifndef FP_LAUNCHER_H
#define FP_LAUNCHER_H

/* OMPI_COMM_WORLD_LOCAL_RANK (Open MPI's mpirun), SLURM_LOCALID (srun) or MPI_LOCALRANKID
 * (MPICH's and Intel MPI's mpiexec), the first one set; -1 when none is. A value that is not a
 * non-negative integer stops with an error naming it. */
int launcher_local_rank(void);

#endif
