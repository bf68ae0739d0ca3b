/* The process's one HDF5 lock. Debian's HDF5 (the MPI build) is not thread-safe, and HDF5 is
 * called from several threads: the loaders' prefetch threads read datasets while the main thread
 * opens datasets and saves or loads checkpoints (a signal's save included). Every entry point
 * that calls HDF5 holds this lock for the duration. It is recursive, so a locked function may
 * call another that locks. */
#ifndef FP_HDF5_LOCK_H
#define FP_HDF5_LOCK_H

void hdf5_lock(void);
void hdf5_unlock(void);

#endif
