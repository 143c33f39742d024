// Measurement helpers of the benchmarks, in C so that they cost the same for every
// implementation measured, and the floor: a raw timerfd loop.
#ifndef CBENCH_SUPPORT_H
#define CBENCH_SUPPORT_H

#include <stdint.h>

/// The clocks the implementations measure on.
typedef enum {
    BENCH_CLOCK_BOOTTIME = 0,
    BENCH_CLOCK_MONOTONIC = 1,
} bench_clock;

/// Resource usage of the whole process (all threads), from getrusage(RUSAGE_SELF).
typedef struct {
    int64_t user_us;
    int64_t system_us;
    int64_t voluntary_switches;
    int64_t involuntary_switches;
} bench_usage;

/// clock_gettime on `clock`, in nanoseconds.
int64_t bench_now(bench_clock clock);

/// getrusage(RUSAGE_SELF).
bench_usage bench_usage_now(void);

/// Resident set size of the process in bytes (/proc/self/statm), 0 when unavailable.
int64_t bench_rss_bytes(void);

/// clock_nanosleep(TIMER_ABSTIME) until `deadline_ns` on `clock`, retried on EINTR.
void bench_sleep_until(bench_clock clock, int64_t deadline_ns);

/// The floor: the calling thread arms a timerfd of our C core (CLOCK_BOOTTIME, absolute
/// deadline) and blocks in read(2), `ticks + 1` times, `period_ns` apart. Tick 0 is the
/// anchor; the lateness of ticks 1...ticks (read returned vs deadline) goes to `lateness`.
/// `start` is taken at tick 0, `end` at the last tick. Returns 0 or errno.
int bench_raw_timerfd(int64_t period_ns, int ticks, int64_t *lateness, bench_usage *start, bench_usage *end);

/// A timerfd of our C core (CLOCK_BOOTTIME) that blocks in read(2), for the async floor.
/// Returns 0 or errno.
int bench_blocking_timer_open(int *out_fd);

/// Arms `fd` for the absolute `deadline_ns` and blocks in read(2) until it expires, as each tick
/// of the raw floor does. Returns 0 or errno.
int bench_blocking_timer_wait(int fd, int64_t deadline_ns);

/// Arms a timerfd of bench_blocking_timer_open for `deadline_ns` (CLOCK_BOOTTIME), without
/// waiting: another thread waits in bench_blocking_timer_read.
int bench_blocking_timer_arm(int fd, int64_t deadline_ns);

/// Blocks until a timerfd of bench_blocking_timer_open expires (retried on EINTR).
int bench_blocking_timer_read(int fd);

/// Closes a timerfd of bench_blocking_timer_open.
void bench_blocking_timer_close(int fd);

#endif
