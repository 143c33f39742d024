import Synchronization

/// The timer of each clock of a kernel engine, created with its timerfd the first time something
/// sleeps on that clock: the one registry behind both wait paths (the `epoll_wait` thread of
/// ``SystemEngine`` and ``PrecisionEngine``, and the opt-in `DispatchSourceRead` path). Only how
/// a timer's fd is watched differs between them, and that is the `watch` closure the engine
/// passes in.
///
/// Lock order: the registry's lock is taken before the engine's own (a thread's state, the
/// Dispatch sources); a `watch` closure runs under it, so a timer is never visible to sleepers
/// before its fd is watched, and an engine that shuts down finds every timer in ``all``.
package final class TimerRegistry: Sendable {
    private let timers = LockedValue<[ClockTimer?]>(Array(repeating: nil, count: EngineClock.allCases.count))
    // Each timer once it is watched, read without the lock: every sleep and every wake looks
    // its clock's timer up, and a timer, once created, stays until the registry goes away.
    // `timers` holds the references; these are copies of them that need no lock.
    private let continuousTimer = Atomic<Unmanaged<ClockTimer>?>(nil)
    private let suspendingTimer = Atomic<Unmanaged<ClockTimer>?>(nil)
    private let realtimeTimer = Atomic<Unmanaged<ClockTimer>?>(nil)
    /// See ``ClockTimer/minimumWakeSpacing``.
    package let minimumWakeSpacing: Int64

    /// Creates an empty registry; timers and their fds come with first use.
    package init(minimumWakeSpacing: Int64 = ClockTimer.defaultWakeSpacing) {
        self.minimumWakeSpacing = minimumWakeSpacing
    }

    /// Where a sleep until `deadline` on `clock` goes, when the answer needs no new timer: the
    /// clock's timer once it exists (its sleep returns at once for a deadline already
    /// reached), else ``SleepRoute/reached`` for a deadline that has passed (no timer, nor fd,
    /// for it). nil: the deadline is ahead and the clock has no timer yet; the caller creates
    /// it with ``timer(for:watch:)``.
    ///
    /// The common answer reads no clock and builds no closure: every sleep asks.
    package func route(until deadline: Int64, on clock: EngineClock) -> SleepRoute? {
        if let timer = existingTimer(for: clock) { return .timer(timer) }
        if deadline <= TimerCore.now(clock) { return .reached }
        return nil
    }

    /// Called under the lock, after `timer` went into `timers`, which keeps it alive.
    private func publish(_ timer: ClockTimer, for clock: EngineClock) {
        let reference = Unmanaged.passUnretained(timer)
        switch clock {
        case .continuous: continuousTimer.store(reference, ordering: .releasing)
        case .suspending: suspendingTimer.store(reference, ordering: .releasing)
        case .realtime: realtimeTimer.store(reference, ordering: .releasing)
        }
    }

    /// The timer of `clock`. On first use it is created (`timerfd_create`) and handed to
    /// `watch`, which registers its fd with the engine's reader; when `watch` throws, the timer
    /// is closed and the error thrown.
    package func timer(
        for clock: EngineClock,
        watch: (ClockTimer) throws(LoopError) -> Void
    ) throws(LoopError) -> ClockTimer {
        try timers.withLock { (timers: inout [ClockTimer?]) throws(LoopError) -> ClockTimer in
            if let timer = timers[clock.rawValue] { return timer }
            let timer = try ClockTimer(clock: clock, minimumWakeSpacing: minimumWakeSpacing)
            do throws(LoopError) {
                try watch(timer)
            } catch {
                timer.close()
                throw error
            }
            timers[clock.rawValue] = timer
            publish(timer, for: clock)
            return timer
        }
    }

    /// The timer of `clock` if something slept on it (once watched), read without the lock.
    package func existingTimer(for clock: EngineClock) -> ClockTimer? {
        let published: Unmanaged<ClockTimer>?
        switch clock {
        case .continuous: published = continuousTimer.load(ordering: .acquiring)
        case .suspending: published = suspendingTimer.load(ordering: .acquiring)
        case .realtime: published = realtimeTimer.load(ordering: .acquiring)
        }
        return published?.takeUnretainedValue()
    }

    /// Every timer created so far.
    package var all: [ClockTimer] {
        timers.withLock { $0.compactMap { $0 } }
    }

    // MARK: Introspection

    /// The number of timerfds open (at most one per clock).
    package var openDescriptorCount: Int {
        timers.withLock { timers in timers.lazy.filter { $0 != nil }.count }
    }

    /// The timerfd of `clock`, nil if nothing slept on that clock yet.
    package func descriptor(for clock: EngineClock) -> Int32? {
        existingTimer(for: clock)?.descriptor
    }

    /// The number of tasks suspended on `clock`.
    package func sleeperCount(on clock: EngineClock) -> Int {
        existingTimer(for: clock)?.sleeperCount ?? 0
    }

    /// The deadline `clock`'s timerfd is armed at, nil when disarmed or not yet created.
    package func armedDeadline(on clock: EngineClock) -> Int64? {
        existingTimer(for: clock)?.armedDeadline
    }
}
