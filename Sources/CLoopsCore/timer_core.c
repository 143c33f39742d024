#define _GNU_SOURCE
#include "CLoopsCore.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static clockid_t clockid_of(cloops_clock clock) {
    switch (clock) {
    case CLOOPS_CLOCK_BOOTTIME: return CLOCK_BOOTTIME;
    case CLOOPS_CLOCK_MONOTONIC: return CLOCK_MONOTONIC;
    case CLOOPS_CLOCK_REALTIME: return CLOCK_REALTIME;
    }
    return CLOCK_MONOTONIC;
}

static int valid_clock(cloops_clock clock) {
    return clock == CLOOPS_CLOCK_BOOTTIME || clock == CLOOPS_CLOCK_MONOTONIC
        || clock == CLOOPS_CLOCK_REALTIME;
}

int cloops_timer_create(cloops_clock clock, int *out_fd) {
    if (!valid_clock(clock) || out_fd == NULL) return EINVAL;
    int fd = timerfd_create(clockid_of(clock), TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0) return errno;
    *out_fd = fd;
    return 0;
}

int cloops_timer_arm(int fd, cloops_clock clock, int64_t deadline_ns) {
    if (!valid_clock(clock)) return EINVAL;
    if (deadline_ns < 1) deadline_ns = 1;
    struct itimerspec spec = {0};
    spec.it_value.tv_sec = (time_t)(deadline_ns / 1000000000LL);
    spec.it_value.tv_nsec = (long)(deadline_ns % 1000000000LL);
    int flags = TFD_TIMER_ABSTIME;
    if (clock == CLOOPS_CLOCK_REALTIME) flags |= TFD_TIMER_CANCEL_ON_SET;
    if (timerfd_settime(fd, flags, &spec, NULL) != 0) return errno;
    return 0;
}

int cloops_timer_disarm(int fd) {
    struct itimerspec spec = {0};
    if (timerfd_settime(fd, 0, &spec, NULL) != 0) return errno;
    return 0;
}

int cloops_timer_read(int fd, uint64_t *out_expirations) {
    if (out_expirations == NULL) return EINVAL;
    for (;;) {
        uint64_t count = 0;
        ssize_t n = read(fd, &count, sizeof count);
        if (n == (ssize_t)sizeof count) {
            *out_expirations = count;
            return 0;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno;
        return EIO;
    }
}

int cloops_close(int fd) {
    if (close(fd) != 0 && errno != EINTR) return errno;
    return 0;
}

int cloops_epoll_create(int *out_epfd) {
    if (out_epfd == NULL) return EINVAL;
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) return errno;
    *out_epfd = epfd;
    return 0;
}

int cloops_epoll_add(int epfd, int fd, uint64_t token) {
    struct epoll_event event = {0};
    event.events = EPOLLIN;
    event.data.u64 = token;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) != 0) return errno;
    return 0;
}

int cloops_epoll_wait(int epfd, uint64_t *tokens, int capacity, int timeout_ms, int *out_count) {
    if (tokens == NULL || out_count == NULL || capacity <= 0) return EINVAL;
    struct epoll_event events[16];
    int max = capacity < 16 ? capacity : 16;
    for (;;) {
        int n = epoll_wait(epfd, events, max, timeout_ms);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno;
        for (int i = 0; i < n; i++) tokens[i] = events[i].data.u64;
        *out_count = n;
        return 0;
    }
}

int cloops_eventfd_create(int *out_fd) {
    if (out_fd == NULL) return EINVAL;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) return errno;
    *out_fd = fd;
    return 0;
}

int cloops_thread_set_name(const char *name) {
    if (name == NULL) return EINVAL;
    return pthread_setname_np(pthread_self(), name);
}

int cloops_eventfd_signal(int fd) {
    uint64_t one = 1;
    for (;;) {
        ssize_t n = write(fd, &one, sizeof one);
        if (n == (ssize_t)sizeof one) return 0;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno;
        return EIO;
    }
}

int cloops_eventfd_drain(int fd) {
    uint64_t value;
    for (;;) {
        ssize_t n = read(fd, &value, sizeof value);
        if (n == (ssize_t)sizeof value) return 0;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errno;
        return EIO;
    }
}

const char *cloops_errno_name(int error) {
    return strerrorname_np(error);
}

const char *cloops_errno_description(int error) {
    return strerrordesc_np(error);
}

// ---------------------------------------------------------------------------------------------
// Zone watch (inotify on the directory of /etc/localtime). See CLoopsCore.h.
// ---------------------------------------------------------------------------------------------

#include <sys/inotify.h>

int cloops_zone_watch_create(int *out_fd) {
    if (out_fd == NULL) return EINVAL;
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) return errno;
    *out_fd = fd;
    return 0;
}

int cloops_zone_watch_add(int fd, const char *directory) {
    if (directory == NULL) return EINVAL;
    uint32_t mask = IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_ATTRIB | IN_CLOSE_WRITE
        | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
    if (inotify_add_watch(fd, directory, mask) < 0) return errno;
    return 0;
}

int cloops_zone_watch_drain(int fd, const char *name, int *out_matched) {
    if (name == NULL || out_matched == NULL) return EINVAL;
    *out_matched = 0;
    // Aligned as inotify(7) asks; one buffer holds many events, the loop reads until EAGAIN.
    char buffer[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (n < 0) return errno;
        if (n == 0) return 0;
        for (char *p = buffer; p < buffer + n;) {
            const struct inotify_event *event = (const struct inotify_event *)p;
            if (event->mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
                *out_matched = 1;
            } else if (event->len > 0 && strcmp(event->name, name) == 0) {
                *out_matched = 1;
            }
            p += sizeof(struct inotify_event) + event->len;
        }
    }
}
