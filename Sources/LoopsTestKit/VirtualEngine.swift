import Foundation
import Loops

/// The engine behind ``VirtualClock``: deadlines on simulated time, and the bookkeeping that
/// lets `advance` return only once every loop that was due has run and gone back to sleep.
///
/// Quiescence is counted, not guessed: each active loop counts as busy until its run sleeps on
/// this engine (or ends). A run marks its task as a participant through ``participate(_:)``,
/// so a virtual sleep inside a body counts as the loop being idle too.
final class VirtualEngine: LoopEngine {
    @TaskLocal private static var participant: ObjectIdentifier?

    struct Sleeper {
        /// Order of arrival: sleepers due at the same instant wake in this order.
        let id: UInt64
        let clock: EngineClock
        let participant: Bool
        let continuation: UnsafeContinuation<WakeReason, any Error>
        let waker: Waker?
    }

    struct State {
        /// Continuous (boot) time, the time everything else derives from.
        var continuous: Int64
        /// Time spent in simulated suspend: suspending time = continuous − suspended.
        var suspended: Int64 = 0
        /// Wall time = wallOrigin + continuous; steps of the wall clock move wallOrigin.
        var wallOrigin: Int64
        /// One heap per clock: each clock is the continuous time plus an offset shared by all of
        /// its deadlines, so each heap's order holds however suspends and wall steps move them.
        var continuousSleepers = DeadlineHeap<Sleeper>()
        var suspendingSleepers = DeadlineHeap<Sleeper>()
        var realtimeSleepers = DeadlineHeap<Sleeper>()
        var handles: [UInt64: (clock: EngineClock, handle: DeadlineHeap<Sleeper>.Handle)] = [:]
        var nextSleeperID: UInt64 = 0
        var activeLoops = 0
        var sleepingParticipants = 0
        var idleWaiters: [UnsafeContinuation<Void, Never>] = []

        func now(_ clock: EngineClock) -> Int64 {
            switch clock {
            case .continuous: return continuous
            case .suspending: return continuous - suspended
            case .realtime: return wallOrigin.addingSaturated(continuous)
            }
        }

        subscript(sleepersOn clock: EngineClock) -> DeadlineHeap<Sleeper> {
            get {
                switch clock {
                case .continuous: return continuousSleepers
                case .suspending: return suspendingSleepers
                case .realtime: return realtimeSleepers
                }
            }
            set {
                switch clock {
                case .continuous: continuousSleepers = newValue
                case .suspending: suspendingSleepers = newValue
                case .realtime: realtimeSleepers = newValue
                }
            }
        }

        /// The continuous time at which the earliest sleeper becomes due (it may be past).
        var earliestDueTime: Int64? {
            let due = [
                continuousSleepers.minimumDeadline,
                suspendingSleepers.minimumDeadline.map { $0.addingSaturated(suspended) },
                realtimeSleepers.minimumDeadline.map { $0.subtractingSaturated(wallOrigin) },
            ]
            return due.compactMap { $0 }.min()
        }

        mutating func insert(_ sleeper: Sleeper, deadline: Int64) {
            let handle = self[sleepersOn: sleeper.clock].insert(deadline: deadline, payload: sleeper)
            handles[sleeper.id] = (sleeper.clock, handle)
            if sleeper.participant { sleepingParticipants += 1 }
        }

        var isIdle: Bool { sleepingParticipants >= activeLoops }

        mutating func takeIdleWaiters() -> [UnsafeContinuation<Void, Never>] {
            guard isIdle else { return [] }
            defer { idleWaiters = [] }
            return idleWaiters
        }

        /// Removes sleeper `id` for resumption; the participant count follows.
        mutating func remove(_ id: UInt64) -> Sleeper? {
            guard let (clock, handle) = handles.removeValue(forKey: id),
                  let sleeper = self[sleepersOn: clock].remove(handle)
            else { return nil }
            return forget(sleeper)
        }

        /// Every sleeper due at the current time, in order of arrival.
        mutating func removeDue() -> [Sleeper] {
            var due: [Sleeper] = []
            for clock in [EngineClock.continuous, .suspending, .realtime] {
                self[sleepersOn: clock].popAll(dueAt: now(clock), into: &due)
            }
            return due.sorted { $0.id < $1.id }.map { forget($0) }
        }

        /// Every sleeper on `.realtime`, in order of arrival.
        mutating func removeRealtime() -> [Sleeper] {
            var woken: [Sleeper] = []
            realtimeSleepers.removeAll(into: &woken)
            return woken.sorted { $0.id < $1.id }.map { forget($0) }
        }

        private mutating func forget(_ sleeper: Sleeper) -> Sleeper {
            handles[sleeper.id] = nil
            if sleeper.participant { sleepingParticipants -= 1 }
            return sleeper
        }
    }

    let state: LockedValue<State>
    /// The system zone loops on this engine see, once a test set one; until then they follow
    /// the machine's. Given to the runs through the task-local ``SystemTimeZone/source``, so
    /// that it concerns this clock's loops only and never the rest of the process.
    let simulatedZone = SimulatedTimeZone()

    init(wallTime: Date, bootTime: Duration) {
        let continuous = max(bootTime.virtualNanoseconds, 0)
        state = LockedValue(State(continuous: continuous, wallOrigin: wallTime.virtualNanoseconds.subtractingSaturated(continuous)))
    }

    // MARK: LoopEngine

    package func now(_ clock: EngineClock) -> Int64 {
        state.withLock { $0.now(clock) }
    }

    nonisolated(nonsending) package func sleep(until deadline: Int64, on clock: EngineClock, waker: Waker?) async throws -> WakeReason {
        try await sleep(until: deadline, on: clock, waker: waker, countsAsIdle: true)
    }

    /// A sleep that never makes its loop count as idle: time moves on only once the loop's body
    /// sleeps on this engine too (or returns).
    nonisolated(nonsending) package func watch(until deadline: Int64, on clock: EngineClock) async throws {
        _ = try await sleep(until: deadline, on: clock, waker: nil, countsAsIdle: false)
    }

    nonisolated(nonsending) private func sleep(until deadline: Int64, on clock: EngineClock, waker: Waker?, countsAsIdle: Bool) async throws -> WakeReason {
        try Task.checkCancellation()
        let isParticipant = countsAsIdle && Self.participant == ObjectIdentifier(self)
        let id = state.withLock { state -> UInt64 in
            state.nextSleeperID += 1
            return state.nextSleeperID
        }
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<WakeReason, any Error>) in
                enum Action { case resume(WakeReason), cancel, suspend([UnsafeContinuation<Void, Never>]) }
                let action = state.withLock { state -> Action in
                    // The cancellation handler may have run before this point (at once, when the
                    // task was cancelled on its way into `withTaskCancellationHandler`) and found
                    // no sleeper to remove: a sleeper inserted now would stay until its deadline,
                    // and, counted as asleep while the task that cancelled it waits for it,
                    // would keep `advance` waiting for ever. The flag is set before the handler
                    // runs, and this check and the handler both hold the lock, so one of the two
                    // always sees the other.
                    if Task.isCancelled { return .cancel }
                    if state.now(clock) >= deadline { return .resume(.deadlineReached) }
                    // Armed under the lock, before the sleeper counts as asleep: a wake that came
                    // first must not let `advance` see the loop idle (and move time on) while
                    // the sleeper is about to be taken out again. `arm` never runs the action
                    // itself, and `wake()` runs it outside the waker's lock, so this lock order
                    // (state, then waker) cannot deadlock.
                    if let waker, !waker.arm({ [weak self] in self?.interrupt(id, with: .interrupted) }) {
                        return .resume(.interrupted)
                    }
                    state.insert(
                        Sleeper(id: id, clock: clock, participant: isParticipant, continuation: continuation, waker: waker),
                        deadline: deadline
                    )
                    return .suspend(state.takeIdleWaiters())
                }
                switch action {
                case .resume(let reason):
                    continuation.resume(returning: reason)
                case .cancel:
                    continuation.resume(throwing: CancellationError())
                case .suspend(let idleWaiters):
                    for waiter in idleWaiters { waiter.resume() }
                }
            }
        } onCancel: {
            let sleeper = state.withLock { $0.remove(id) }
            sleeper?.waker?.disarm()
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    package func loopDidActivate() {
        state.withLock { $0.activeLoops += 1 }
    }

    package func loopDidDeactivate() {
        let waiters = state.withLock { state in
            state.activeLoops -= 1
            return state.takeIdleWaiters()
        }
        for waiter in waiters { waiter.resume() }
    }

    package var needsParticipation: Bool { true }

    nonisolated(nonsending) package func participate(_ operation: nonisolated(nonsending) () async -> Void) async {
        await Self.$participant.withValue(ObjectIdentifier(self)) {
            await SystemTimeZone.$source.withValue(.simulated(simulatedZone)) { await operation() }
        }
    }

    // MARK: Driving time

    /// Waits until every active loop sleeps on this engine or has ended.
    func waitUntilIdle() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let idle = state.withLock { state -> Bool in
                if state.isIdle { return true }
                state.idleWaiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }

    /// Moves continuous time to `target`, stopping at each deadline on the way to let the
    /// sleepers due there run until they are idle again.
    func advance(toContinuous target: Int64, suspending: Bool) async {
        await waitUntilIdle()
        while true {
            let due = state.withLock { state -> [Sleeper]? in
                // A deadline saturated at Int64.max (beyond 292 years) never comes, even when time
                // is advanced to the end: else a loop whose next slot saturated would run there
                // again and again.
                guard let earliest = state.earliestDueTime, earliest <= target, earliest < .max else {
                    state.move(to: target, suspending: suspending)
                    return nil
                }
                state.move(to: max(earliest, state.continuous), suspending: suspending)
                return state.removeDue()
            }
            guard let due else { break }
            for sleeper in due {
                sleeper.waker?.disarm()
                sleeper.continuation.resume(returning: .deadlineReached)
            }
            await waitUntilIdle()
        }
        await waitUntilIdle()
    }

    /// Steps the wall clock by `delta`: every sleeper on `.realtime` wakes with `.clockStepped`,
    /// as the kernel reports ECANCELED on a timerfd armed with TFD_TIMER_CANCEL_ON_SET.
    func stepWallClock(by delta: Int64) async {
        await wakeRealtimeSleepers { state in
            state.wallOrigin = state.wallOrigin.addingSaturated(delta)
        }
    }

    /// Sets the simulated system zone to `zone`, then wakes every `.realtime` sleeper with
    /// `.clockStepped`, as the system engine does when the localtime link changes. Elapsed and
    /// wall time do not move.
    func changeSystemTimeZone(to zone: TimeZone) async {
        await wakeRealtimeSleepers { _ in
            // Every loop is asleep (idle) here, so each of them sees the wake below.
            simulatedZone.zone = zone
        }
    }

    /// Once every loop is idle, applies `change` and wakes every `.realtime` sleeper with
    /// `.clockStepped` in one step under the lock, then waits until the loops are idle again.
    private func wakeRealtimeSleepers(after change: (inout State) -> Void) async {
        await waitUntilIdle()
        let woken = state.withLock { state -> [Sleeper] in
            change(&state)
            return state.removeRealtime()
        }
        for sleeper in woken {
            sleeper.waker?.disarm()
            sleeper.continuation.resume(returning: .clockStepped)
        }
        await waitUntilIdle()
    }

    private func interrupt(_ id: UInt64, with reason: WakeReason) {
        let sleeper = state.withLock { $0.remove(id) }
        sleeper?.continuation.resume(returning: reason)
    }
}

extension VirtualEngine.State {
    /// Moves continuous time forward (never back); during a simulated suspend the suspending
    /// clock stands still.
    mutating func move(to target: Int64, suspending: Bool) {
        guard target > continuous else { return }
        if suspending { suspended += target - continuous }
        continuous = target
    }
}

extension Int64 {
    /// `self + other`, saturating: a deadline far in the future stays far in the future.
    func addingSaturated(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        guard overflow else { return sum }
        return other > 0 ? .max : .min
    }

    /// `self - other`, saturating.
    func subtractingSaturated(_ other: Int64) -> Int64 {
        let (difference, overflow) = subtractingReportingOverflow(other)
        guard overflow else { return difference }
        return other < 0 ? .max : .min
    }
}

extension Duration {
    /// Whole nanoseconds, saturating at the bounds of `Int64` (about ±292 years).
    var virtualNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return scaled.addingSaturated(attoseconds / 1_000_000_000)
    }
}

extension Date {
    /// Nanoseconds since 1970, clamped to what `Int64` holds (1677-09-21 to 2262-04-11); NaN
    /// reads as 0.
    var virtualNanoseconds: Int64 {
        let value = (timeIntervalSince1970 * 1e9).rounded()
        guard !value.isNaN else { return 0 }
        // 2^63 is exactly representable; every Double below it converts without trapping.
        if value >= 9_223_372_036_854_775_808.0 { return .max }
        if value <= -9_223_372_036_854_775_808.0 { return .min }
        return Int64(value)
    }
}
