#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CLoopsCore

/// The Swift face of the C timer core: the same calls, with errno values turned into
/// ``LoopError``s whose message names the failed call, the clock and the errno
/// ("timerfd_settime(CLOCK_REALTIME) failed: EINVAL (Invalid argument)").
///
/// It keeps no state; ``ClockTimer`` owns the descriptors and decides when to call what.
package enum TimerCore {
    /// What one read of a timerfd found.
    package enum ReadOutcome: Sendable, Equatable {
        /// The timer expired this many times since the last read (one-shot timers: 1).
        case expired(UInt64)
        /// Nothing to read: the fd was readable for a moment only, or another reader was first.
        case notExpired
        /// The wall clock was set while a `.realtime` timer was armed (ECANCELED).
        case clockStepped
        /// Any other failure.
        case failed(LoopError)
    }

    /// The C core's name for `clock`.
    static func coreClock(_ clock: EngineClock) -> cloops_clock {
        switch clock {
        case .continuous: CLOOPS_CLOCK_BOOTTIME
        case .suspending: CLOOPS_CLOCK_MONOTONIC
        case .realtime: CLOOPS_CLOCK_REALTIME
        }
    }

    /// The kernel's name for `clock`, used in error messages.
    package static func kernelName(_ clock: EngineClock) -> String {
        switch clock {
        case .continuous: "CLOCK_BOOTTIME"
        case .suspending: "CLOCK_MONOTONIC"
        case .realtime: "CLOCK_REALTIME"
        }
    }

    /// "EINVAL (Invalid argument)", or "errno 4242" for a value the C library does not know.
    package static func describe(errno code: Int32) -> String {
        guard let name = cloops_errno_name(code) else { return "errno \(code)" }
        guard let text = cloops_errno_description(code) else { return String(cString: name) }
        return "\(String(cString: name)) (\(String(cString: text)))"
    }

    /// The error for a failed `call` (e.g. "timerfd_settime(CLOCK_BOOTTIME)").
    package static func error(_ call: String, errno code: Int32) -> LoopError {
        LoopError(.systemTimer, "\(call) failed: \(describe(errno: code))")
    }

    /// clock_gettime on `clock`, in nanoseconds.
    ///
    /// The three clocks always exist on Linux ≥ 2.6.39, so the call cannot fail for them;
    /// should it fail anyway, 0 is returned, which makes every deadline look far in the future
    /// for monotonic clocks and is re-checked at the next wake — never a crash.
    @inline(__always)
    package static func now(_ clock: EngineClock) -> Int64 {
        cloops_clock_read(coreClock(clock))
    }

    /// A new non-blocking, close-on-exec timerfd on `clock`.
    package static func create(_ clock: EngineClock) throws(LoopError) -> Int32 {
        var fd: Int32 = -1
        let code = cloops_timer_create(coreClock(clock), &fd)
        guard code == 0 else { throw error("timerfd_create(\(kernelName(clock)))", errno: code) }
        return fd
    }

    /// Arms `fd` one-shot at the absolute `deadline` on `clock` (cancel-on-set for `.realtime`).
    package static func arm(_ fd: Int32, _ clock: EngineClock, at deadline: Int64) throws(LoopError) {
        let code = cloops_timer_arm(fd, coreClock(clock), deadline)
        guard code == 0 else { throw error("timerfd_settime(\(kernelName(clock)))", errno: code) }
    }

    /// Stops `fd` from expiring.
    package static func disarm(_ fd: Int32, _ clock: EngineClock) throws(LoopError) {
        let code = cloops_timer_disarm(fd)
        guard code == 0 else { throw error("timerfd_settime(\(kernelName(clock)))", errno: code) }
    }

    /// Reads the expiration count of `fd`.
    package static func read(_ fd: Int32, _ clock: EngineClock) -> ReadOutcome {
        var expirations: UInt64 = 0
        let code = cloops_timer_read(fd, &expirations)
        switch code {
        case 0: return .expired(expirations)
        case EAGAIN: return .notExpired
        case ECANCELED where clock == .realtime: return .clockStepped
        default: return .failed(error("read(timerfd \(kernelName(clock)))", errno: code))
        }
    }

    /// Closes `fd`. A failing close is reported but leaves nothing to undo: Linux releases the
    /// descriptor in every case.
    @discardableResult
    package static func close(_ fd: Int32) -> LoopError? {
        let code = cloops_close(fd)
        return code == 0 ? nil : error("close(timerfd)", errno: code)
    }

    // MARK: - Zone watch

    /// A new non-blocking, close-on-exec inotify fd watching `directory` for entries being
    /// created, replaced, removed or rewritten; nil when inotify or the directory is not
    /// available (the caller then relies on re-reading the zone at each computation).
    package static func makeZoneWatch(directory: String) -> Int32? {
        var fd: Int32 = -1
        guard cloops_zone_watch_create(&fd) == 0 else { return nil }
        guard cloops_zone_watch_add(fd, directory) == 0 else {
            _ = cloops_close(fd)
            return nil
        }
        return fd
    }

    /// What one drain of a zone watch found.
    package enum ZoneWatchOutcome: Sendable, Equatable {
        /// No event concerned the watched entry.
        case unchanged
        /// The entry was created, replaced, removed or rewritten, or an event could not be
        /// attributed (queue overflow, the directory itself went away).
        case changed
        /// The fd could not be read: it will not tell of changes any more.
        case failed
    }

    /// Reads every pending event of the inotify fd `fd` and says whether the entry `name`
    /// may have changed.
    package static func drainZoneWatch(_ fd: Int32, name: String) -> ZoneWatchOutcome {
        var matched: Int32 = 0
        guard cloops_zone_watch_drain(fd, name, &matched) == 0 else { return .failed }
        return matched != 0 ? .changed : .unchanged
    }
}
