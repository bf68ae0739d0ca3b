#include "hdf5_lock.h"

#include <pthread.h>
#include <string.h>

#include "check.h"

static pthread_mutex_t lock;
static pthread_once_t lock_made = PTHREAD_ONCE_INIT;

static void make_lock(void) {
  pthread_mutexattr_t attributes;
  FP_CHECK(pthread_mutexattr_init(&attributes) == 0 &&
               pthread_mutexattr_settype(&attributes, PTHREAD_MUTEX_RECURSIVE) == 0 &&
               pthread_mutex_init(&lock, &attributes) == 0,
           "cannot create the HDF5 lock");
  pthread_mutexattr_destroy(&attributes);
}

void hdf5_lock(void) {
  FP_CHECK(pthread_once(&lock_made, make_lock) == 0, "pthread_once");
  int status = pthread_mutex_lock(&lock);
  FP_CHECK(status == 0, "locking the HDF5 lock: %s", strerror(status));
}

void hdf5_unlock(void) {
  pthread_mutex_unlock(&lock);
}
