// Fault injection for the tests of swift-loops: the system calls of the C timer core, failing
// on demand.
//
// This target is linked into the test executable only (no product depends on it), next to
// CLoopsCore. It defines timerfd_create, timerfd_settime, read, epoll_wait, eventfd and close
// itself; the linker binds CLoopsCore's calls to these definitions instead of the C library's,
// and each one passes through to the C library (dlsym(RTLD_NEXT)) unless a fault armed here
// matches. Release builds of the library and of `loops` never link it, so they contain no
// fault-injection code at all.
#ifndef CLOOPS_FAULTS_H
#define CLOOPS_FAULTS_H

#ifdef __cplusplus
extern "C" {
#endif

/// The system calls a fault can be armed on.
typedef enum {
    /// timerfd_create(2); the target is the clock id (CLOCK_BOOTTIME, ...).
    CLOOPS_FAULT_TIMERFD_CREATE = 0,
    /// timerfd_settime(2) (arming and disarming); the target is the timerfd.
    CLOOPS_FAULT_TIMERFD_SETTIME = 1,
    /// read(2); the target is the descriptor read.
    CLOOPS_FAULT_READ = 2,
    /// epoll_wait(2); the target is the epoll descriptor.
    CLOOPS_FAULT_EPOLL_WAIT = 3,
    /// eventfd(2); there is no target (use CLOOPS_FAULT_ANY).
    CLOOPS_FAULT_EVENTFD = 4,
} cloops_fault_call;

/// A target that matches every call.
#define CLOOPS_FAULT_ANY (-1)

/// Arms a fault: of the calls to `call` on `target` made from code of the test executable
/// (CLoopsCore, the tests; never the C library's, Dispatch's or Foundation's own calls), the
/// first `skip` pass through, the next `times` fail with `error` (-1 and errno set, without
/// calling the C library), and later ones pass through again. `times` < 0 fails every call
/// from then on, until cleared.
///
/// Returns the fault's id (>= 0, for cloops_fault_fired and cloops_fault_clear), or -1 when
/// the arguments are invalid (`error` <= 0, `skip` < 0, `times` == 0) or 64 faults are armed.
/// The slot of a spent or cleared fault is reused once no slot is free.
int cloops_fault_arm(cloops_fault_call call, int target, int skip, int times, int error);

/// How many calls fault `id` has failed so far (also after it is spent or cleared, until its
/// slot is reused); -1 for an unknown id.
int cloops_fault_fired(int id);

/// Disarms fault `id`; its count stays readable.
void cloops_fault_clear(int id);

/// Disarms every fault and forgets every count.
void cloops_fault_reset(void);

/// How many faults are armed and not yet spent.
int cloops_fault_armed_count(void);

/// Makes the timerfd `fd` expire at once (the C library's timerfd_settime, never faulted), so
/// that its reader wakes up and reads it: the way a test reaches a read fault on a timer that
/// would otherwise expire much later. Returns 0 or errno.
///
/// The engine's mirror of the fd's arming is not told: call it while nothing else arms the fd
/// (no sleeper of that clock arriving or leaving) until the reader has run, or the new arming
/// replaces the immediate expiration.
int cloops_fault_expire_timer_now(int fd);

#ifdef __cplusplus
}
#endif

#endif
