/* An output locked for a whole run, on the rank that writes it, so that a second run on the same
 * output stops at once with an error naming it and the holder, instead of both writing (or one
 * deleting the other's temporary files); and under that lock, the temporary files that runs
 * killed before their rename left are removed (no other run can be writing them). */
#ifndef FP_OUTPUT_LOCK_H
#define FP_OUTPUT_LOCK_H

/* Takes an exclusive lock on lock_path (created if missing; it records "pid N on HOST"); on
 * failure FP_FATAL "<what> is in use by another <command> (...)". Returns the descriptor, held
 * until output_lock_release or the end of the process. */
int output_lock_take(const char *lock_path, const char *what, const char *command);
void output_lock_release(int lock);
/* Removes the files of `directory` whose names start with one of the `count` prefixes and
 * prints one line saying how many (prefixed by command). Only under the lock. */
void output_lock_remove_stale(const char *directory, const char *const *prefixes, int count,
                              const char *command);

#endif
