/// The clocks an engine keeps deadlines on.
package enum EngineClock: Int, Hashable, Sendable, CaseIterable {
    /// CLOCK_BOOTTIME: elapsed time including suspend (Swift's `ContinuousClock`).
    case continuous = 0
    /// CLOCK_MONOTONIC: elapsed time excluding suspend (Swift's `SuspendingClock`).
    case suspending = 1
    /// CLOCK_REALTIME: nanoseconds since 1970, may be stepped.
    case realtime = 2
}

/// Why a sleep ended.
package enum WakeReason: Hashable, Sendable {
    /// The deadline was reached.
    case deadlineReached
    /// The wall clock was stepped (only sleeps on `.realtime` end this way): the sleeper
    /// re-evaluates its schedule.
    case clockStepped
    /// The sleep's ``Waker`` was woken: the loop's schedule changed or `stop()` was called.
    case interrupted
}

/// Where a sleep goes, decided without suspending (``LoopEngine/route(until:on:)``), so that a
/// sleeping loop awaits a kernel timer directly, with no async frames of the engine between.
package enum SleepRoute {
    /// The deadline has been reached: nothing to wait for (and no timer or fd needed).
    case reached
    /// Sleep on this timer: ``ClockTimer/sleep(until:waker:)``, or, under a run's own
    /// cancellation handler, ``ClockTimer/sleep(until:interruptedBy:)``.
    case timer(ClockTimer)
    /// Sleep through the engine (``LoopEngine/sleep(until:on:waker:)``): engines without
    /// kernel timers, such as virtual time.
    case engine
}

/// The one interface between loops and time: a deadline heap per clock with an async
/// sleep-until, and clock-step events. The system engine implements it on timerfds; the
/// virtual clock of LoopsTestKit implements it on simulated time.
package protocol LoopEngine: AnyObject, Sendable {
    /// The current time on `clock`, in nanoseconds (since boot, or since 1970 for `.realtime`).
    func now(_ clock: EngineClock) -> Int64
    /// Whether ``now(_:)`` is the kernel's clock (`clock_gettime` through ``TimerCore/now(_:)``):
    /// a loop then reads its clocks directly, twice a tick, not through the engine.
    var readsKernelClocks: Bool { get }

    /// Suspends the calling task until `deadline` on `clock`, or until `waker` is woken.
    ///
    /// Engines arm `waker` before the sleep begins (when arming fails, a wake is pending:
    /// return `.interrupted` without sleeping) and disarm it before resuming the sleeper for
    /// any other reason — kernel timers excepted, whose armed action reports that it found
    /// nothing to end. The armed action removes the sleeper from the heap and resumes it with
    /// `.interrupted`, unless it was already resumed.
    ///
    /// - Returns: `.clockStepped` when a `.realtime` sleep was ended early by a step of the wall
    ///   clock; `.interrupted` when the waker ended it; `.deadlineReached` otherwise.
    /// - Throws: `CancellationError` when the task is cancelled (at once, also when it was
    ///   cancelled before the call), ``LoopError`` when the system timer fails.
    nonisolated(nonsending) func sleep(until deadline: Int64, on clock: EngineClock, waker: Waker?) async throws -> WakeReason
    /// Where a sleep until `deadline` on `clock` goes: for kernel engines the clock's timer
    /// (created on first use; its sleep returns at once for a deadline already reached), or
    /// ``SleepRoute/reached`` for a deadline that has passed before the clock has a timer.
    ///
    /// - Throws: ``LoopError`` when the clock's timer cannot be created or the engine has shut
    ///   down.
    func route(until deadline: Int64, on clock: EngineClock) throws(LoopError) -> SleepRoute
    /// Suspends the calling task until `deadline` on `clock`: a watch on the loop's own work
    /// (an iteration's timeout), not the loop waiting. Virtual time does not count this sleep
    /// as the loop being idle, so it does not move on while the body works.
    ///
    /// - Throws: `CancellationError` when the task is cancelled, ``LoopError`` when the system
    ///   timer fails.
    nonisolated(nonsending) func watch(until deadline: Int64, on clock: EngineClock) async throws

    /// A loop became active (`start()` or `run()` was accepted while it was idle). Called
    /// synchronously, before the loop's task runs, so virtual time knows to wait for it.
    func loopDidActivate()

    /// A loop became idle: its last run finished and no run is queued.
    func loopDidDeactivate()

    /// Runs one loop run's code. The virtual engine marks the task as a participant so that
    /// its sleeps count as the loop being idle; the system engine just calls `operation`.
    nonisolated(nonsending) func participate(_ operation: nonisolated(nonsending) () async -> Void) async

    /// Whether runs must go through ``participate(_:)``: false lets a run skip the wrapper's two
    /// async frames, which a sleeping loop would otherwise hold for as long as it sleeps.
    var needsParticipation: Bool { get }

    /// Where a loop on this engine runs its body when its creator gave no executor: precision
    /// mode runs bodies on the thread that woke; nil (the default) means the global executor.
    var preferredExecutor: (any TaskExecutor)? { get }
}

extension LoopEngine {
    /// An engine keeps its own time unless it says otherwise.
    package var readsKernelClocks: Bool { false }

    /// Through the engine's own ``sleep(until:on:waker:)``.
    package func route(until deadline: Int64, on clock: EngineClock) throws(LoopError) -> SleepRoute { .engine }

    /// ``sleep(until:on:waker:)`` of an engine on kernel timers (``SystemEngine``,
    /// ``PrecisionEngine``), whose ``route(until:on:)`` is never ``SleepRoute/engine``: the
    /// clock's timer's sleep, under a cancellation handler of its own. A deadline already
    /// reached needs no timer (nor fd), also on an engine that has shut down.
    nonisolated(nonsending) package func sleepOnRoutedTimer(
        until deadline: Int64,
        on clock: EngineClock,
        waker: Waker?
    ) async throws -> WakeReason {
        try Task.checkCancellation()
        guard case .timer(let timer) = try route(until: deadline, on: clock) else { return .deadlineReached }
        return try await timer.sleep(until: deadline, waker: waker)
    }

    /// A plain sleep: only virtual time tells watches from sleeps.
    nonisolated(nonsending) package func watch(until deadline: Int64, on clock: EngineClock) async throws {
        _ = try await sleep(until: deadline, on: clock, waker: nil)
    }

    /// Nothing to do: kernel-timer engines track sleepers, not loops.
    package func loopDidActivate() {}

    /// Nothing to do: kernel-timer engines track sleepers, not loops.
    package func loopDidDeactivate() {}

    /// Runs `operation` directly: only virtual time needs to know which tasks belong to loops.
    nonisolated(nonsending) package func participate(_ operation: nonisolated(nonsending) () async -> Void) async { await operation() }

    /// Kernel-timer engines need no participation.
    package var needsParticipation: Bool { false }

    /// The global executor: bodies hop off the thread that handled the wake.
    package var preferredExecutor: (any TaskExecutor)? { nil }
}
