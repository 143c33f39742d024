// See CLoopsFaults.h. Every definition here replaces the C library's function of the same name
// in the test executable; the C library's own is reached through dlsym(RTLD_NEXT).
#define _GNU_SOURCE
// Fortified headers turn read(2) into an inline wrapper, which a definition of `read` would
// clash with.
#undef _FORTIFY_SOURCE
#include "CLoopsFaults.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// The C library's functions.
// ---------------------------------------------------------------------------------------------

// Resolved on first use: a shared library's constructor may call read or close before this
// image's constructors run. Two threads resolving at once store the same pointer.
//
// Under ThreadSanitizer (`make tsan`) the runtime intercepts these functions with weak
// definitions, which the ones below override; passing through to its interceptor rather than
// straight to the C library keeps what it learns from them (an eventfd write happens before
// the read that sees it, a close ends a descriptor's history). The interceptor is named
// ___interceptor_<name> (LLVM 17 and later) or __interceptor_<name>; without a sanitizer
// neither exists and RTLD_NEXT finds the C library's function.
static void *resolve(const char *name) {
    // "___interceptor_" + name, then the same without its first underscore.
    char interceptor[64] = "___interceptor_";
    size_t prefix = strlen(interceptor), length = strlen(name);
    if (prefix + length < sizeof interceptor) {
        memcpy(interceptor + prefix, name, length + 1);
        for (int skip = 0; skip <= 1; skip++) {
            void *function = dlsym(RTLD_DEFAULT, interceptor + skip);
            if (function != NULL) return function;
        }
    }
    return dlsym(RTLD_NEXT, name);
}

#define REAL(name)                                                                           \
    static __typeof__(&name) real_##name(void) {                                              \
        static __typeof__(&name) cached;                                                      \
        __typeof__(&name) function = __atomic_load_n(&cached, __ATOMIC_ACQUIRE);              \
        if (function == NULL) {                                                               \
            function = (__typeof__(&name))resolve(#name);                                     \
            __atomic_store_n(&cached, function, __ATOMIC_RELEASE);                            \
        }                                                                                     \
        return function;                                                                      \
    }

REAL(timerfd_create)
REAL(timerfd_settime)
REAL(read)
REAL(epoll_wait)
REAL(eventfd)
REAL(close)

// ---------------------------------------------------------------------------------------------
// The fault table.
// ---------------------------------------------------------------------------------------------

// The code of the test executable: CLoopsCore, the Swift libraries and the tests, linked into
// one image. The C library, Dispatch and Foundation are shared objects that call the same
// functions (Dispatch waits in epoll_wait and arms its own timerfds) and resolve them to the
// definitions below too, since the executable exports them; a fault must never reach them, or
// it would crash the test process instead of exercising swift-loops. Both symbols are defined
// by the linker (GNU ld, gold and lld).
extern const char __executable_start[];
extern const char etext[];

static int called_from_test_image(const void *return_address) {
    const char *address = (const char *)return_address;
    return address >= __executable_start && address < etext;
}

#define MAX_FAULTS 64

struct fault {
    int in_use;
    int armed;
    cloops_fault_call call;
    int target;
    int skip;
    int times;
    int error;
    int fired;
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fault table[MAX_FAULTS];
// Read without the lock by every wrapped call: when nothing is armed (nearly always, and for
// every call of Dispatch and Foundation), a call costs one atomic load.
static atomic_int armed_faults;

static void disarm_locked(struct fault *fault) {
    if (!fault->armed) return;
    fault->armed = 0;
    atomic_fetch_sub(&armed_faults, 1);
}

/// The errno the call must fail with, or 0 to pass it through.
static int take_fault(cloops_fault_call call, int target, const void *return_address) {
    if (atomic_load(&armed_faults) == 0) return 0;
    if (!called_from_test_image(return_address)) return 0;
    int error = 0;
    pthread_mutex_lock(&table_lock);
    for (int i = 0; i < MAX_FAULTS; i++) {
        struct fault *fault = &table[i];
        if (!fault->armed || fault->call != call) continue;
        if (fault->target != CLOOPS_FAULT_ANY && fault->target != target) continue;
        // The first matching fault decides, so two faults on one call act one after the other.
        if (fault->skip > 0) {
            fault->skip--;
            break;
        }
        error = fault->error;
        fault->fired++;
        if (fault->times > 0 && --fault->times == 0) disarm_locked(fault);
        break;
    }
    pthread_mutex_unlock(&table_lock);
    return error;
}

int cloops_fault_arm(cloops_fault_call call, int target, int skip, int times, int error) {
    if (error <= 0 || skip < 0 || times == 0) return -1;
    if (call < CLOOPS_FAULT_TIMERFD_CREATE || call > CLOOPS_FAULT_EVENTFD) return -1;
    int id = -1;
    pthread_mutex_lock(&table_lock);
    // A free slot, else the slot of a fault that is spent or cleared (its count is lost):
    // helpers that arm one-shot faults and never look at them again do not fill the table.
    for (int i = 0; i < MAX_FAULTS && id < 0; i++) {
        if (!table[i].in_use) id = i;
    }
    for (int i = 0; i < MAX_FAULTS && id < 0; i++) {
        if (!table[i].armed) id = i;
    }
    if (id >= 0) {
        table[id] = (struct fault){
            .in_use = 1, .armed = 1, .call = call, .target = target,
            .skip = skip, .times = times, .error = error, .fired = 0,
        };
        atomic_fetch_add(&armed_faults, 1);
    }
    pthread_mutex_unlock(&table_lock);
    return id;
}

int cloops_fault_fired(int id) {
    if (id < 0 || id >= MAX_FAULTS) return -1;
    pthread_mutex_lock(&table_lock);
    int fired = table[id].in_use ? table[id].fired : -1;
    pthread_mutex_unlock(&table_lock);
    return fired;
}

void cloops_fault_clear(int id) {
    if (id < 0 || id >= MAX_FAULTS) return;
    pthread_mutex_lock(&table_lock);
    disarm_locked(&table[id]);
    pthread_mutex_unlock(&table_lock);
}

void cloops_fault_reset(void) {
    pthread_mutex_lock(&table_lock);
    for (int i = 0; i < MAX_FAULTS; i++) {
        disarm_locked(&table[i]);
        table[i].in_use = 0;
    }
    pthread_mutex_unlock(&table_lock);
}

int cloops_fault_armed_count(void) {
    return atomic_load(&armed_faults);
}

int cloops_fault_expire_timer_now(int fd) {
    // 1 ns after the clock's origin: long past, so the timer expires as soon as it is set (an
    // all-zero it_value would disarm it instead).
    struct itimerspec spec = {0};
    spec.it_value.tv_nsec = 1;
    if (real_timerfd_settime()(fd, TFD_TIMER_ABSTIME, &spec, NULL) != 0) return errno;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// The interposed functions.
// ---------------------------------------------------------------------------------------------

int timerfd_create(int clockid, int flags) {
    int error = take_fault(CLOOPS_FAULT_TIMERFD_CREATE, clockid, __builtin_return_address(0));
    if (error != 0) {
        errno = error;
        return -1;
    }
    return real_timerfd_create()(clockid, flags);
}

int timerfd_settime(int fd, int flags, const struct itimerspec *new_value, struct itimerspec *old_value) {
    int error = take_fault(CLOOPS_FAULT_TIMERFD_SETTIME, fd, __builtin_return_address(0));
    if (error != 0) {
        errno = error;
        return -1;
    }
    return real_timerfd_settime()(fd, flags, new_value, old_value);
}

ssize_t read(int fd, void *buffer, size_t count) {
    int error = take_fault(CLOOPS_FAULT_READ, fd, __builtin_return_address(0));
    if (error != 0) {
        // Nothing is read: an expiration stays pending, as it would after a real failure.
        errno = error;
        return -1;
    }
    return real_read()(fd, buffer, count);
}

int epoll_wait(int epfd, struct epoll_event *events, int max_events, int timeout) {
    int error = take_fault(CLOOPS_FAULT_EPOLL_WAIT, epfd, __builtin_return_address(0));
    if (error != 0) {
        errno = error;
        return -1;
    }
    return real_epoll_wait()(epfd, events, max_events, timeout);
}

int eventfd(unsigned int initial, int flags) {
    int error = take_fault(CLOOPS_FAULT_EVENTFD, CLOOPS_FAULT_ANY, __builtin_return_address(0));
    if (error != 0) {
        errno = error;
        return -1;
    }
    return real_eventfd()(initial, flags);
}

int close(int fd) {
    // A fault armed on a descriptor must not outlive it: the number is handed to the next
    // open, and the fault would hit an unrelated descriptor. Any caller's close counts.
    if (fd >= 0 && atomic_load(&armed_faults) != 0) {
        pthread_mutex_lock(&table_lock);
        for (int i = 0; i < MAX_FAULTS; i++) {
            struct fault *fault = &table[i];
            if (fault->armed && fault->call != CLOOPS_FAULT_TIMERFD_CREATE
                && fault->call != CLOOPS_FAULT_EVENTFD && fault->target == fd) {
                disarm_locked(fault);
            }
        }
        pthread_mutex_unlock(&table_lock);
    }
    return real_close()(fd);
}
