// A lock in one 32-bit word, for LockedValue: glibc's low-level lock (lll_lock) over futex(2).
// A pthread_mutex_t is 40 bytes and its lock and unlock cost ~55 instructions through the PLT
// and its type checks; a loop holds two locks and takes six a tick in precision mode.
#ifndef CLOOPS_LOCK_H
#define CLOOPS_LOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Acquires the lock at `word` (0: free, 1: held, 2: held with waiters), waiting in
/// futex(2) FUTEX_WAIT_PRIVATE while another thread holds it. Not recursive. Out of line so
/// that ThreadSanitizer, which instruments this file, sees its acquire.
void cloops_lock(uint32_t *word);

/// Releases the lock at `word`, waking one waiter (FUTEX_WAKE_PRIVATE) if there is one.
void cloops_unlock(uint32_t *word);

#ifdef __cplusplus
}
#endif

#endif
