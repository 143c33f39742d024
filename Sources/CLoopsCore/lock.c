#define _GNU_SOURCE
#include "CLoopsLock.h"

#include <linux/futex.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { FREE = 0, HELD = 1, CONTENDED = 2 };

// Drepper, "Futexes Are Tricky", mutex 3; glibc's lll_lock and lll_unlock for a normal
// mutex. A waiter marks the word CONTENDED before it sleeps, so the holder's release knows to
// wake it; the waiter keeps the mark when it takes the lock, since another may still sleep
// (at worst one futex wake for no one). FUTEX_WAIT returns at once when the word is no longer
// CONTENDED, and on EINTR; the loop re-checks either way.
static void lock_contended(uint32_t *word) {
    while (__atomic_exchange_n(word, CONTENDED, __ATOMIC_ACQUIRE) != FREE) {
        syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, CONTENDED, NULL, NULL, 0);
    }
}

void cloops_lock(uint32_t *word) {
    uint32_t expected = FREE;
    if (__atomic_compare_exchange_n(word, &expected, HELD, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return;
    lock_contended(word);
}

void cloops_unlock(uint32_t *word) {
    if (__atomic_exchange_n(word, FREE, __ATOMIC_RELEASE) == CONTENDED) {
        syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
}
