// The C timer core of swift-loops: thin wrappers over timerfd(2), clock_gettime(2) and
// epoll(7). Every function returns 0 on success or an errno value; none aborts, none retains
// state. Tests make these calls fail by linking Tests/CLoopsFaults, which replaces the system
// calls in the test executable only: nothing here knows about it.
#ifndef CLOOPS_CORE_H
#define CLOOPS_CORE_H

#include <stdint.h>
#include <stdbool.h>
#include <time.h>

#include "CLoopsLock.h"

#ifdef __cplusplus
extern "C" {
#endif

/// The clocks the core arms timers on.
typedef enum {
    /// CLOCK_BOOTTIME: monotonic, counts time spent in suspend.
    CLOOPS_CLOCK_BOOTTIME = 0,
    /// CLOCK_MONOTONIC: monotonic, stops during suspend.
    CLOOPS_CLOCK_MONOTONIC = 1,
    /// CLOCK_REALTIME: wall clock; timers are armed with TFD_TIMER_CANCEL_ON_SET.
    CLOOPS_CLOCK_REALTIME = 2,
} cloops_clock;

/// clock_gettime(2) on `clock`, in nanoseconds (since boot, or since the epoch for REALTIME);
/// 0 if the call fails (it cannot for these three clocks). Inline: a loop reads clocks several
/// times a tick, and an out-of-line wrapper with its checks cost ~20 instructions a read.
static inline int64_t cloops_clock_read(cloops_clock clock) {
    struct timespec ts = {0, 0};
    clockid_t id = clock == CLOOPS_CLOCK_REALTIME ? CLOCK_REALTIME
        : clock == CLOOPS_CLOCK_BOOTTIME ? CLOCK_BOOTTIME : CLOCK_MONOTONIC;
    if (clock_gettime(id, &ts) != 0) return 0;
    return (int64_t)ts.tv_sec * 1000000000LL + (int64_t)ts.tv_nsec;
}

/// timerfd_create(2) with TFD_NONBLOCK | TFD_CLOEXEC.
int cloops_timer_create(cloops_clock clock, int *out_fd);

/// timerfd_settime(2) with TFD_TIMER_ABSTIME, one-shot at `deadline_ns` on `clock`.
/// REALTIME timers also get TFD_TIMER_CANCEL_ON_SET, so a step of the wall clock makes the
/// next read fail with ECANCELED. A deadline in the past fires at once (it is clamped to 1 ns,
/// because an all-zero it_value would disarm the timer instead).
int cloops_timer_arm(int fd, cloops_clock clock, int64_t deadline_ns);

/// timerfd_settime(2) with a zero it_value: no further expirations.
int cloops_timer_disarm(int fd);

/// read(2) of the expiration count, retried on EINTR. Returns 0 with the count, EAGAIN when
/// the timer has not expired, ECANCELED when the wall clock was set (REALTIME only), or errno.
int cloops_timer_read(int fd, uint64_t *out_expirations);

/// close(2), not retried on EINTR (Linux releases the descriptor in any case).
int cloops_close(int fd);

/// epoll_create1(2) with EPOLL_CLOEXEC.
int cloops_epoll_create(int *out_epfd);

/// epoll_ctl(2) EPOLL_CTL_ADD for EPOLLIN, with `token` as the event's data.
int cloops_epoll_add(int epfd, int fd, uint64_t token);

/// epoll_wait(2), retried on EINTR; `timeout_ms` < 0 waits forever. The tokens of the ready
/// descriptors are written to `tokens` (at most `capacity`) and their number to `out_count`.
int cloops_epoll_wait(int epfd, uint64_t *tokens, int capacity, int timeout_ms, int *out_count);

/// eventfd(2) with EFD_NONBLOCK | EFD_CLOEXEC, used to wake an epoll waiter.
int cloops_eventfd_create(int *out_fd);

/// pthread_setname_np(3) on the calling thread. The name must fit the kernel's 15 bytes
/// (ERANGE otherwise); returns 0 or the error.
int cloops_thread_set_name(const char *name);

/// write(2) of 1 to an eventfd, retried on EINTR.
int cloops_eventfd_signal(int fd);

/// read(2) of an eventfd's counter (EAGAIN when zero), retried on EINTR.
int cloops_eventfd_drain(int fd);

/// The symbolic name of an errno value ("EINVAL"), or NULL when the C library does not know it.
/// Thread-safe (strerrorname_np), unlike strerror(3).
const char *cloops_errno_name(int error);

/// The description of an errno value ("Invalid argument"), or NULL when unknown.
/// Thread-safe (strerrordesc_np), unlike strerror(3).
const char *cloops_errno_description(int error);

#ifdef __cplusplus
}
#endif

#endif

// ---------------------------------------------------------------------------------------------
// Zone watch: inotify(7) on the directory of /etc/localtime, so that a change of the system's
// time zone (the link replaced by timedatectl, ln -sf, a package upgrade) wakes wall-clock
// sleepers. The kernel reports no ECANCELED for a zone change: only the file system tells.
// ---------------------------------------------------------------------------------------------

#ifdef __cplusplus
extern "C" {
#endif

/// inotify_init1(2) with IN_NONBLOCK | IN_CLOEXEC.
int cloops_zone_watch_create(int *out_fd);

/// inotify_add_watch(2) on `directory` (IN_ONLYDIR) for the events that replace or rewrite an
/// entry: IN_CREATE, IN_MOVED_TO, IN_DELETE, IN_ATTRIB, IN_CLOSE_WRITE, plus IN_DELETE_SELF and
/// IN_MOVE_SELF of the directory itself.
int cloops_zone_watch_add(int fd, const char *directory);

/// Reads every pending event of `fd` (non-blocking, retried on EINTR) and sets `*out_matched`
/// to 1 when one of them concerns the entry `name`, or cannot be attributed (queue overflow,
/// the directory itself went away, the watch was removed), else to 0. Returns 0 (also when
/// nothing was pending) or errno.
int cloops_zone_watch_drain(int fd, const char *name, int *out_matched);

#ifdef __cplusplus
}
#endif
