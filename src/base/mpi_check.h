/* MPI_CHECK(call): stops with the call, file:line and MPI's own error string when an MPI call
 * fails (on communicators whose error handler returns errors instead of aborting). */
#ifndef FP_MPI_CHECK_H
#define FP_MPI_CHECK_H

#include <mpi.h>
#include <stdio.h>

#include "check.h"

#define MPI_CHECK(call)                                                                            \
  do {                                                                                             \
    int mpi_status_ = (call);                                                                      \
    if (mpi_status_ != MPI_SUCCESS) {                                                              \
      char mpi_message_[MPI_MAX_ERROR_STRING];                                                     \
      int mpi_message_length_ = 0;                                                                 \
      if (MPI_Error_string(mpi_status_, mpi_message_, &mpi_message_length_) != MPI_SUCCESS)        \
        snprintf(mpi_message_, sizeof mpi_message_, "MPI error code %d", mpi_status_);             \
      FP_FATAL("%s failed: %s", #call, mpi_message_);                                              \
    }                                                                                              \
  } while (0)

#endif
