#define _GNU_SOURCE
#include "CBenchSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

// The C core of swift-loops (target CLoopsCore, linked through the Loops product). Declared
// here rather than imported so that the floor runs exactly the calls the engine makes.
int cloops_timer_create(int clock, int *out_fd);
int cloops_timer_arm(int fd, int clock, int64_t deadline_ns);
int cloops_timer_read(int fd, uint64_t *out_expirations);
int cloops_close(int fd);
enum { CLOOPS_CLOCK_BOOTTIME = 0 };

static clockid_t clockid_of(bench_clock clock) {
    return clock == BENCH_CLOCK_BOOTTIME ? CLOCK_BOOTTIME : CLOCK_MONOTONIC;
}

int64_t bench_now(bench_clock clock) {
    struct timespec ts;
    clock_gettime(clockid_of(clock), &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

bench_usage bench_usage_now(void) {
    struct rusage usage;
    bench_usage out = {0};
    if (getrusage(RUSAGE_SELF, &usage) != 0) return out;
    out.user_us = (int64_t)usage.ru_utime.tv_sec * 1000000 + usage.ru_utime.tv_usec;
    out.system_us = (int64_t)usage.ru_stime.tv_sec * 1000000 + usage.ru_stime.tv_usec;
    out.voluntary_switches = usage.ru_nvcsw;
    out.involuntary_switches = usage.ru_nivcsw;
    return out;
}

int64_t bench_rss_bytes(void) {
    FILE *file = fopen("/proc/self/statm", "r");
    if (file == NULL) return 0;
    long size = 0, resident = 0;
    int matched = fscanf(file, "%ld %ld", &size, &resident);
    fclose(file);
    if (matched != 2) return 0;
    return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

void bench_sleep_until(bench_clock clock, int64_t deadline_ns) {
    struct timespec ts = { .tv_sec = deadline_ns / 1000000000LL, .tv_nsec = deadline_ns % 1000000000LL };
    while (clock_nanosleep(clockid_of(clock), TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

int bench_blocking_timer_open(int *out_fd) {
    int fd = -1;
    int code = cloops_timer_create(CLOOPS_CLOCK_BOOTTIME, &fd);
    if (code != 0) return code;
    // The core opens timerfds non-blocking (for epoll); the floors block in read instead.
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        code = errno;
        cloops_close(fd);
        return code;
    }
    *out_fd = fd;
    return 0;
}

int bench_blocking_timer_arm(int fd, int64_t deadline_ns) {
    return cloops_timer_arm(fd, CLOOPS_CLOCK_BOOTTIME, deadline_ns);
}

int bench_blocking_timer_read(int fd) {
    uint64_t expirations = 0;
    return cloops_timer_read(fd, &expirations);
}

int bench_blocking_timer_wait(int fd, int64_t deadline_ns) {
    int code = bench_blocking_timer_arm(fd, deadline_ns);
    if (code != 0) return code;
    return bench_blocking_timer_read(fd);
}

void bench_blocking_timer_close(int fd) {
    cloops_close(fd);
}

int bench_raw_timerfd(int64_t period_ns, int ticks, int64_t *lateness, bench_usage *start, bench_usage *end) {
    int fd = -1;
    int code = bench_blocking_timer_open(&fd);
    if (code != 0) return code;
    int64_t first = bench_now(BENCH_CLOCK_BOOTTIME) + period_ns;
    for (int k = 0; k <= ticks; k++) {
        int64_t deadline = first + (int64_t)k * period_ns;
        code = bench_blocking_timer_wait(fd, deadline);
        if (code != 0) break;
        int64_t now = bench_now(BENCH_CLOCK_BOOTTIME);
        if (k == 0) {
            *start = bench_usage_now();
        } else {
            lateness[k - 1] = now - deadline;
            if (k == ticks) *end = bench_usage_now();
        }
    }
    cloops_close(fd);
    return code;
}
