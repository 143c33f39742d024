public import Foundation
public import Logging

/// A background loop: runs its body every interval or at wall-clock times, with the API of
/// Python's `disnake.ext.tasks.Loop`.
///
/// ```swift
/// let printer = try Loop(seconds: 5) { loop in
///     print("iteration", loop.currentLoop)
/// }
/// printer.start()
/// ```
///
/// A `Loop` is safe to use from any thread or task. Its body and hooks run as Swift tasks on
/// the global executor (or on the `executor` given at creation). Every way a run can end goes
/// through `afterLoop`; an unhandled error also goes through `onError`, which by default logs
/// it at `.error` through the loop's `Logger`: a loop never dies silently.
public final class Loop: Sendable {
    /// The body's signature: it receives the loop, so it can read `currentLoop` or call `stop()`.
    public typealias Body = @Sendable (Loop) async throws -> Void

    let body: Body
    let clock: LoopClock
    let logger: Logger
    let executor: (any TaskExecutor)?
    let state: LockedValue<LoopStateMachine>
    /// Ends a sleeping run's sleep early for `stop()` and `changeInterval`.
    let waker = Waker()

    // MARK: Creating a loop

    /// A loop that runs every `seconds + 60·minutes + 3600·hours` seconds, the first time when it
    /// starts (disnake's `@tasks.loop(seconds=, minutes=, hours=, count=, reconnect=)`).
    ///
    /// Only the total is validated, as in disnake: `seconds: -1, minutes: 1` is 59 s.
    ///
    /// - Parameters:
    ///   - count: the number of successful iterations after which the loop ends; nil for no end.
    ///   - reconnect: whether errors of the handled types are retried after a back-off.
    ///   - missedTicks: what to do after an overrun; `.delay` when nil.
    ///   - clock: the clock intervals are measured on.
    ///   - executor: where the body and hooks run; when nil, the global executor (or, for a
    ///     ``LoopClock/precise`` clock, the precision engine's thread).
    ///   - logger: where the loop logs (`.debug` for retries, `.error` for a loop that died and
    ///     for an instant its schedule gave that is not after the last scheduled one).
    /// - Throws: ``LoopError`` for a negative, non-finite or too large total, or a `count` ≤ 0.
    public convenience init(
        seconds: Double = 0,
        minutes: Double = 0,
        hours: Double = 0,
        count: Int? = nil,
        reconnect: Bool = true,
        missedTicks: MissedTickPolicy? = nil,
        clock: LoopClock = .continuous,
        executor: (any TaskExecutor)? = nil,
        logger: Logger = Logger(label: "swift-loops"),
        _ body: @escaping Body
    ) throws {
        try self.init(
            schedule: .every(seconds: seconds, minutes: minutes, hours: hours),
            count: count,
            reconnect: reconnect,
            missedTicks: missedTicks,
            clock: clock,
            executor: executor,
            logger: logger,
            body
        )
    }

    /// A loop that runs at each of `times` every day (disnake's `@tasks.loop(time=[…])`).
    /// Duplicates are ignored; times in different zones may be mixed.
    ///
    /// - Throws: ``LoopError`` for an empty list or a `count` ≤ 0.
    public convenience init(
        times: [TimeOfDay],
        count: Int? = nil,
        reconnect: Bool = true,
        missedTicks: MissedTickPolicy? = nil,
        clock: LoopClock = .continuous,
        executor: (any TaskExecutor)? = nil,
        logger: Logger = Logger(label: "swift-loops"),
        _ body: @escaping Body
    ) throws {
        try self.init(
            schedule: .times(times),
            count: count,
            reconnect: reconnect,
            missedTicks: missedTicks,
            clock: clock,
            executor: executor,
            logger: logger,
            body
        )
    }

    /// A loop on any ``Schedule``: an interval, times of day, a systemd calendar expression or a
    /// cron expression.
    ///
    /// - Parameter missedTicks: what to do after an overrun; nil means `.delay` for intervals
    ///   and `.skip` for wall-clock schedules.
    /// - Throws: ``LoopError`` for a negative or too large interval, an empty list of times, or
    ///   a `count` ≤ 0.
    public init(
        schedule: Schedule,
        count: Int? = nil,
        reconnect: Bool = true,
        missedTicks: MissedTickPolicy? = nil,
        clock: LoopClock = .continuous,
        executor: (any TaskExecutor)? = nil,
        logger: Logger = Logger(label: "swift-loops"),
        _ body: @escaping Body
    ) throws {
        try RelativeInterval.validate(schedule)
        if let count, count <= 0 {
            throw LoopError(.invalidCount, "count must be at least 1, got \(count)")
        }
        self.body = body
        self.clock = clock
        self.executor = executor ?? clock.engine.preferredExecutor
        self.logger = logger
        self.state = LockedValue(
            LoopStateMachine(
                schedule: schedule,
                count: count,
                reconnect: reconnect,
                missedTicks: missedTicks,
                intervalClock: clock.intervalClock
            )
        )
    }

    // MARK: Running

    /// Starts the loop in a new task and returns it. The first iteration of an interval loop
    /// runs at once (after `beforeLoop`).
    ///
    /// After `cancel()`, `start()` is accepted and the new run begins once the cancelled one
    /// has finished (its `afterLoop` included).
    ///
    /// - Throws: ``LoopError`` (`.alreadyRunning`) when a run is active and not being cancelled.
    @discardableResult
    public func start() throws -> Task<Void, Never> {
        launch(try admitRun())
    }

    /// Runs the loop in the calling task until it ends: returns when it ends by `stop()` or
    /// `count`, rethrows an unhandled error of the body (after `onError` and `afterLoop`), and
    /// throws `CancellationError` when the calling task or the loop is cancelled (after
    /// `afterLoop`). `task` is not changed.
    ///
    /// - Throws: ``LoopError`` (`.alreadyRunning`) when a run is active and not being cancelled.
    public func run() async throws {
        try await run(stoppedAtAdmission: { false })
    }

    /// ``run()``, with `stopRequested` asked inside the admission, under the loop's lock: when
    /// it returns true the run is admitted already stopped (`beforeLoop` and `afterLoop` run,
    /// no iteration). A graceful shutdown that arrives before the run exists is thus never lost
    /// (LoopsServiceLifecycle); `stopRequested` must not call back into the loop.
    package func run(stoppedAtAdmission stopRequested: () -> Bool) async throws {
        let admission = try admitRun(stopped: stopRequested)
        let runner = makeTask {
            await self.execute(admission)
        }
        attach(publicTask: nil, cancel: { runner.cancel() }, to: admission.id)
        let outcome = await withTaskCancellationHandler {
            await runner.value
        } onCancel: {
            runner.cancel()
        }
        switch outcome {
        case .finished:
            return
        case .cancelled:
            throw CancellationError()
        case .failed(let error):
            throw error
        }
    }

    /// Runs the body once, now, without hooks, `onError`, retries or `failed`; its error is
    /// thrown to the caller (disnake's `await loop()`).
    public func callAsFunction() async throws {
        try await body(self)
    }

    /// Stops gracefully: the current iteration finishes (a handled error is still retried
    /// until it succeeds), then the loop exits without sleeping again; called while the loop
    /// sleeps, it exits at once. `afterLoop` runs. Does nothing when the loop is not running.
    public func stop() {
        perform(state.withLock { $0.requestStop() })
    }

    /// Cancels the body or the sleep in progress. `afterLoop` runs with `isBeingCancelled`
    /// true, shielded from the cancellation. `onError` is not called and `failed` is not set.
    /// Does nothing when the loop is not running.
    public func cancel() {
        let cancellations = state.withLock { $0.requestCancel() }
        for cancel in cancellations { cancel() }
    }

    /// Cancels the loop and starts it again once the cancelled run has finished; starts it when
    /// it is not running.
    public func restart() {
        let anchor = RunAnchor(now: clock)
        let restart = state.withLock { $0.restart(at: anchor) }
        for cancel in restart.cancellations { cancel() }
        activateEngine(for: restart.admission)
        launch(restart.admission)
    }

    // MARK: Hooks

    /// Registers a closure that runs before the first iteration of each run, e.g. to wait until
    /// the service is ready. An error it throws ends the run like an unhandled body error.
    public func beforeLoop(_ hook: @escaping @Sendable (Loop) async throws -> Void) {
        state.withLock { $0.register(beforeLoop: hook) }
    }

    /// Registers a closure that runs once after each run, however it ended (also on
    /// cancellation, where `isBeingCancelled` is true and the closure is shielded from the
    /// cancellation so it can still flush work). An error it throws is logged.
    public func afterLoop(_ hook: @escaping @Sendable (Loop) async throws -> Void) {
        state.withLock { $0.register(afterLoop: hook) }
    }

    /// Registers the handler of unhandled errors (`failed` is already true when it runs),
    /// replacing the default, which logs the error at `.error`.
    public func onError(_ handler: @escaping @Sendable (Loop, any Error) async -> Void) {
        state.withLock { $0.register(onError: handler) }
    }

    // MARK: Error types

    /// Adds error types that `reconnect` retries with back-off. An error matches a type as
    /// `error is T` would (subclasses match).
    public func addErrorType(_ types: any Error.Type...) {
        state.withLock { $0.addErrorTypes(types) }
    }

    /// Removes error types; returns whether all of them were handled before.
    @discardableResult
    public func removeErrorType(_ types: any Error.Type...) -> Bool {
        state.withLock { $0.removeErrorTypes(types) }
    }

    /// Removes every handled error type, including the defaults (`POSIXError`, `URLError`) and
    /// the ``TransientError`` rule.
    public func clearErrorTypes() {
        state.withLock { $0.clearErrorTypes() }
    }

    // MARK: Changing the schedule

    /// Switches to a relative interval. While running, the next iteration is due at the last
    /// scheduled one plus the new interval, and a pending sleep is re-armed.
    ///
    /// - Throws: ``LoopError`` for an invalid total; the old schedule is then kept.
    public func changeInterval(seconds: Double = 0, minutes: Double = 0, hours: Double = 0) throws {
        replaceSchedule(with: try .every(seconds: seconds, minutes: minutes, hours: hours))
    }

    /// Switches to times of day. While running, the next iteration is the next slot after now.
    ///
    /// - Throws: ``LoopError`` for an empty list; the old schedule is then kept.
    public func changeInterval(times: [TimeOfDay]) throws {
        try changeSchedule(.times(times))
    }

    /// Switches to any schedule, with the rules of the two `changeInterval` methods.
    ///
    /// - Throws: ``LoopError`` for an invalid schedule; the old one is then kept.
    public func changeSchedule(_ schedule: Schedule) throws {
        try RelativeInterval.validate(schedule)
        replaceSchedule(with: schedule)
    }

    private func replaceSchedule(with schedule: Schedule) {
        let now = LoopNow(clock)
        perform(state.withLock { $0.changeSchedule(to: schedule, now: now) })
    }

    // MARK: Reading the state

    /// Seconds of the relative interval as given (0 when not given); nil for wall-clock
    /// schedules.
    public var seconds: Double? { state.withLock { $0.schedule.intervalRule?.seconds } }
    /// Minutes of the relative interval as given (0 when not given); nil for wall-clock
    /// schedules.
    public var minutes: Double? { state.withLock { $0.schedule.intervalRule?.minutes } }
    /// Hours of the relative interval as given (0 when not given); nil for wall-clock schedules.
    public var hours: Double? { state.withLock { $0.schedule.intervalRule?.hours } }

    /// The times of day, duplicates removed; nil unless the schedule is ``Schedule/times(_:)``.
    public var times: [TimeOfDay]? {
        state.withLock {
            if case .times(let rule) = $0.schedule.kind { return rule.times }
            return nil
        }
    }

    /// The number of successful iterations after which the loop ends; nil for no end.
    public var count: Int? { state.withLock { $0.count } }

    /// The schedule the loop follows.
    public var schedule: Schedule { state.withLock { $0.schedule } }

    /// The iteration number: 0 during the first body, incremented right after each successful
    /// body (so it equals `count` in `afterLoop` when the count was reached). Kept after the run
    /// ends, reset by the next start.
    public var currentLoop: Int { state.withLock { $0.currentLoop } }

    /// When the next iteration is scheduled; nil when the loop is not running or `stop()` was
    /// called. Unchanged while a failed iteration is retried.
    public var nextIteration: Date? {
        switch state.withLock({ $0.nextInstant }) {
        case nil:
            return nil
        case .wall(let date):
            return date
        case .elapsed(let deadline):
            let engine = clock.engine
            let now = engine.now(clock.intervalClock)
            let wall = engine.now(.realtime)
            // An interval of up to ~292 years can put the deadline past what Int64 nanoseconds
            // since 1970 hold (year 2262): then the date is computed in seconds instead.
            let (remaining, overflow) = deadline.subtractingReportingOverflow(now)
            if !overflow, case (let instant, false) = wall.addingReportingOverflow(remaining) {
                return Date(nanosecondsSince1970: instant)
            }
            return Date(nanosecondsSince1970: wall).addingTimeInterval((Double(deadline) - Double(now)) / 1e9)
        }
    }

    /// True from `start()` until `afterLoop` has returned (so also inside the hooks).
    public var isRunning: Bool { state.withLock { $0.isRunning } }

    /// True while the run is being cancelled (inside `afterLoop` after `cancel()`).
    public var isBeingCancelled: Bool { state.withLock { $0.isBeingCancelled } }

    /// True from an unhandled error (already inside `onError`) until the next start.
    public var failed: Bool { state.withLock { $0.failed } }

    /// The task of the most recent `start()`; nil before the first.
    public var task: Task<Void, Never>? { state.withLock { $0.task } }

    // MARK: Test support

    /// Replaces the back-off jitter (a value in `0...upper` seconds) — for deterministic tests.
    package func setBackoffJitter(_ jitter: @escaping @Sendable (Double) -> Double) {
        state.withLock { $0.replaceJitter(jitter) }
    }

    // MARK: Plumbing

    private func admitRun(stopped stopRequested: () -> Bool = { false }) throws -> LoopStateMachine.Admission {
        let anchor = RunAnchor(now: clock)
        // `stopRequested` is asked under the lock, so a shutdown is seen either here or by stop().
        let admission = try state.withLock { try $0.admit(at: anchor, stopped: stopRequested()) }
        activateEngine(for: admission)
        return admission
    }

    /// Tells the engine, before the run's task exists, that an idle loop became active (so
    /// virtual time waits for it).
    private func activateEngine(for admission: LoopStateMachine.Admission) {
        if admission.activatesEngine { clock.engine.loopDidActivate() }
    }

    /// Starts an admitted run in a task of its own and returns the task.
    @discardableResult
    private func launch(_ admission: LoopStateMachine.Admission) -> Task<Void, Never> {
        let task = makeTask {
            _ = await self.execute(admission)
        }
        attach(publicTask: task, cancel: { task.cancel() }, to: admission.id)
        return task
    }

    private func attach(
        publicTask: Task<Void, Never>?,
        cancel: @escaping @Sendable () -> Void,
        to id: UInt64
    ) {
        switch state.withLock({ $0.attach(publicTask: publicTask, cancel: cancel, to: id) }) {
        case .none:
            break
        case .cancelTask(let cancel):
            cancel()
        }
    }

    private func perform(_ action: LoopStateMachine.WakeAction) {
        switch action {
        case .none:
            break
        case .wakeSleeper:
            waker.wake()
        }
    }

    /// A new task for the loop's code: on `executor` when one was given (or preferred by the
    /// engine), else on the global executor.
    func makeTask<Success: Sendable>(
        _ operation: sending @escaping @isolated(any) () async -> Success
    ) -> Task<Success, Never> {
        if let executor {
            return Task(executorPreference: executor, operation: operation)
        }
        return Task(operation: operation)
    }
}

extension Date {
    init(nanosecondsSince1970 nanoseconds: Int64) {
        self.init(timeIntervalSince1970: Double(nanoseconds) / 1e9)
    }

    /// Nanoseconds since 1970, rounded up so that a deadline is never before the date, and
    /// clamped to what an `Int64` holds.
    var nanosecondsSince1970: Int64 {
        let value = (timeIntervalSince1970 * 1e9).rounded(.up)
        if value >= 9.2e18 { return Int64.max }
        if value <= -9.2e18 { return Int64.min }
        return Int64(value)
    }
}
