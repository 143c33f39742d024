import CLoopsCore
import CLoopsFaults
import Testing

@testable import Loops

#if canImport(Glibc)
import Glibc
#endif

/// A fault armed in the test executable's system calls (Tests/CLoopsFaults): the calls of the C
/// timer core fail as the kernel would make them fail, with nothing in the library's own code.
struct Fault {
    /// A system call a fault can be armed on.
    enum Call {
        /// timerfd_create(2), on one clock or any.
        case timerfdCreate
        /// timerfd_settime(2): arming and disarming.
        case timerfdSettime
        /// read(2).
        case read
        /// epoll_wait(2).
        case epollWait
        /// eventfd(2).
        case eventfd

        var core: cloops_fault_call {
            switch self {
            case .timerfdCreate: CLOOPS_FAULT_TIMERFD_CREATE
            case .timerfdSettime: CLOOPS_FAULT_TIMERFD_SETTIME
            case .read: CLOOPS_FAULT_READ
            case .epollWait: CLOOPS_FAULT_EPOLL_WAIT
            case .eventfd: CLOOPS_FAULT_EVENTFD
            }
        }
    }

    /// Matches every call (the C side's CLOOPS_FAULT_ANY).
    static let anyTarget: Int32 = -1

    /// The fault's slot in the C table.
    let id: Int32

    /// Arms a fault: of the calls to `call` on `target` (a descriptor; for `.timerfdCreate` a
    /// clock id, see ``clockID(_:)``), the first `skip` pass, the next `times` fail with `code`
    /// (every later one when `times` is nil).
    static func arm(_ call: Call, target: Int32 = anyTarget, skip: Int = 0, times: Int? = 1, errno code: Int32) throws -> Fault {
        let id = cloops_fault_arm(call.core, target, Int32(skip), Int32(times ?? -1), code)
        try #require(id >= 0, "the fault table refused \(call) on \(target)")
        return Fault(id: id)
    }

    /// How many calls the fault has failed.
    var fired: Int { Int(cloops_fault_fired(id)) }

    /// Disarms the fault (its count stays readable).
    func clear() { cloops_fault_clear(id) }

    /// The clock id timerfd_create receives for `clock`.
    static func clockID(_ clock: EngineClock) -> Int32 {
        switch clock {
        case .continuous: CLOCK_BOOTTIME
        case .suspending: CLOCK_MONOTONIC
        case .realtime: CLOCK_REALTIME
        }
    }

    /// Makes the timerfd `fd` expire at once, so that its reader wakes and reads it (the way to
    /// reach a read fault on a timer armed far ahead). Arm nothing else on the fd's clock until
    /// the reader ran: a new arming would replace the immediate expiration.
    static func expireTimerNow(_ fd: Int32) throws {
        let code = cloops_fault_expire_timer_now(fd)
        try #require(code == 0, "timerfd_settime on \(fd): \(TimerCore.describe(errno: code))")
    }

    /// Wakes an engine thread blocked in epoll_wait through its eventfd, so that it calls
    /// epoll_wait again (and meets a fault armed on it).
    static func wakeThread(eventfd: Int32) throws {
        let code = cloops_eventfd_signal(eventfd)
        try #require(code == 0, "eventfd write: \(TimerCore.describe(errno: code))")
    }
}

extension SystemEngine {
    /// Makes the realtime timerfd report ECANCELED once and wakes its reader: exactly what the
    /// kernel does when the wall clock is set, without touching the machine's clock. Opens the
    /// fd if needed. Call it while no realtime sleeper arrives or leaves (see
    /// ``Fault/expireTimerNow(_:)``).
    func simulateWallClockStep() throws {
        try injectReadError(on: .realtime, errno: ECANCELED)
    }

    /// Makes the next read of `clock`'s timerfd fail with `code` and wakes its reader. Opens the
    /// fd if needed.
    func injectReadError(on clock: EngineClock, errno code: Int32) throws {
        let fd = try openTimerDescriptor(for: clock)
        _ = try Fault.arm(.read, target: fd, errno: code)
        try Fault.expireTimerNow(fd)
    }
}
