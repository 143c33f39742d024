public import CoreMetrics
public import Foundation
public import Logging
public import Tracing

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
///
/// Every loop has a ``name`` that its log lines (metadata `loop.name`), metrics (dimension
/// `loop`) and spans carry, and a started loop is listed by ``registered`` with its ``status``.
public final class Loop: Sendable {
    /// The body's signature: it receives the loop, so it can read `currentLoop` or call `stop()`.
    ///
    /// `nonisolated(nonsending)`: a body runs on the executor its run runs on (the global
    /// executor, the loop's `executor`, or a precision engine's thread) without a hop into it
    /// and back on every tick. Any async closure converts to it; one isolated to an actor, or
    /// `@concurrent`, still runs where its isolation says.
    public typealias Body = nonisolated(nonsending) @Sendable (Loop) async throws -> Void

    let body: Body
    let clock: LoopClock
    // The two flags follow the clock (18 bytes), in the bytes its alignment would leave empty:
    // declared last, they took 8 bytes more and the object 16 more of the heap.
    /// `store != nil`, kept as a flag: testing the optional existential copies it, twice a tick.
    let recordsRuns: Bool
    /// Whether each tick calls the body straight from the run's frame: no span, timeout or
    /// run store to put around it.
    let callsBodyDirectly: Bool
    /// The loop's place in ``LoopRegistry``, -1 until its first start; read and written only
    /// under the registry's lock. (After the flags, in bytes the layout leaves empty.)
    @exclusivity(unchecked) nonisolated(unsafe) var registrySlot: Int32 = -1
    /// The injected logger as given (kept by the state machine). Loops that share a logger
    /// share its storage: giving each loop a copy with `loop.name` in its metadata cost 320
    /// bytes per loop (a dictionary and a copy of the handler's box), for lines that are rare.
    var injectedLogger: Logger { state.withLock { $0.logger } }
    /// The injected logger with `loop.name` in its metadata, made for each (rare) log line.
    var logger: Logger {
        var logger = injectedLogger
        logger[metadataKey: "loop.name"] = "\(name)"
        return logger
    }
    /// Where the loop's tasks run: the one given at creation, else the engine's preference
    /// (a precision engine's thread), else nil for the global executor.
    var executor: (any TaskExecutor)? {
        extras?.value.executor ?? clock.engine.preferredExecutor
    }
    /// The loop's name: given, or where the loop was created.
    public let name: String
    /// What few loops have, boxed: a loop with none of them pays one pointer (inline, the four
    /// cost every loop 88 bytes).
    private struct Extras: Sendable {
        let instruments: LoopInstruments?
        let timeout: Int64?
        let store: (any RunStore)?
        /// The executor given at creation.
        let executor: (any TaskExecutor)?
    }
    private let extras: Boxed<Extras>?
    /// nil when no metrics backend and no tracer are in use.
    var instruments: LoopInstruments? { extras?.value.instruments }
    /// The per-iteration timeout in nanoseconds.
    var timeout: Int64? { extras?.value.timeout }
    /// Where the loop records its runs and claims its slots; nil when it records nothing.
    public var store: (any RunStore)? { extras?.value.store }
    /// The state machine behind the loop's lock, and the waker's cell.
    let state: LoopStorage
    /// Ends a sleeping run's sleep early for `stop()` and `changeInterval`.
    var waker: Waker { state.waker }

    // MARK: Creating a loop

    /// A loop that runs every `seconds + 60·minutes + 3600·hours` seconds, the first time when it
    /// starts (disnake's `@tasks.loop(seconds=, minutes=, hours=, count=, reconnect=)`).
    ///
    /// Only the total is validated, as in disnake: `seconds: -1, minutes: 1` is 59 s.
    ///
    /// - Parameters:
    ///   - count: the number of successful iterations after which the loop ends; nil for no end.
    ///   - reconnect: whether errors of the handled types are retried after a back-off.
    ///   - name: the loop's name in logs, metrics, spans and the registry; when nil,
    ///     `File.swift:line` of the call that created the loop.
    ///   - missedTicks: what to do after an overrun; `.delay` when nil.
    ///   - timeout: the longest an iteration's body may run; the body is then cancelled and the
    ///     iteration fails with a ``LoopError`` of code ``LoopError/Code/timedOut``.
    ///   - onFailure: what an unhandled error does: end the loop (the default) or keep the
    ///     schedule.
    ///   - randomizedDelay: a random delay added to each iteration (systemd's
    ///     `RandomizedDelaySec=`); never moves the grid.
    ///   - firstIteration: when the first iteration runs: at start (the default), after one
    ///     interval, or at a given instant.
    ///   - store: where the loop records its runs (``FileRunStore``, or a store shared by
    ///     replicas): each slot is claimed before its body runs and runs only when the claim is
    ///     granted; interval slots then count from the Unix epoch. nil: nothing is recorded.
    ///   - catchUp: with a `store`, what runs at start of the slots missed while the process was
    ///     down: none (the default), the latest once, or every one up to a bound.
    ///   - clock: the clock intervals are measured on.
    ///   - executor: where the body and hooks run; when nil, the global executor (or, for a
    ///     ``LoopClock/precise-type.property`` clock, the precision engine's thread).
    ///   - logger: where the loop logs (`.debug` for retries, `.error` for a loop that died and
    ///     for an instant its schedule gave that is not after the last scheduled one; `.trace`
    ///     for each iteration when its level, read as a run's iterations begin, allows); by
    ///     default the task-local `Logger.current` of the caller.
    ///   - metrics: where iterations, errors, timeouts, missed ticks, body durations and wake
    ///     lateness are counted; when nil, swift-metrics' global `MetricsSystem.factory`.
    ///   - tracer: where each iteration's span goes; when nil, `InstrumentationSystem.tracer`.
    /// - Throws: ``LoopError`` for a negative, non-finite or too large total, a `count` ≤ 0, or
    ///   an invalid option (``LoopError/Code/invalidOption``).
    public convenience init(
        seconds: Double = 0,
        minutes: Double = 0,
        hours: Double = 0,
        count: Int? = nil,
        reconnect: Bool = true,
        name: String? = nil,
        missedTicks: MissedTickPolicy? = nil,
        timeout: Duration? = nil,
        onFailure: FailurePolicy = .endLoop,
        randomizedDelay: RandomizedDelay? = nil,
        firstIteration: FirstIteration = .atStart,
        store: (any RunStore)? = nil,
        catchUp: CatchUp = .none,
        clock: LoopClock = .continuous,
        executor: (any TaskExecutor)? = nil,
        logger: Logger = Logger.current,
        metrics: (any MetricsFactory)? = nil,
        tracer: (any Tracer)? = nil,
        fileID: String = #fileID,
        line: Int = #line,
        _ body: @escaping Body
    ) throws {
        try self.init(
            schedule: .every(seconds: seconds, minutes: minutes, hours: hours),
            count: count,
            reconnect: reconnect,
            name: name,
            missedTicks: missedTicks,
            timeout: timeout,
            onFailure: onFailure,
            randomizedDelay: randomizedDelay,
            firstIteration: firstIteration,
            store: store,
            catchUp: catchUp,
            clock: clock,
            executor: executor,
            logger: logger,
            metrics: metrics,
            tracer: tracer,
            fileID: fileID,
            line: line,
            body
        )
    }

    /// A loop that runs at each of `times` every day (disnake's `@tasks.loop(time=[…])`).
    /// Duplicates are ignored; times in different zones may be mixed. The other parameters are
    /// those of ``init(schedule:count:reconnect:name:missedTicks:timeout:onFailure:randomizedDelay:firstIteration:store:catchUp:clock:executor:logger:metrics:tracer:fileID:line:_:)``.
    ///
    /// - Throws: ``LoopError`` for an empty list, a `count` ≤ 0 or an invalid option.
    public convenience init(
        times: [TimeOfDay],
        count: Int? = nil,
        reconnect: Bool = true,
        name: String? = nil,
        missedTicks: MissedTickPolicy? = nil,
        timeout: Duration? = nil,
        onFailure: FailurePolicy = .endLoop,
        randomizedDelay: RandomizedDelay? = nil,
        firstIteration: FirstIteration = .atStart,
        store: (any RunStore)? = nil,
        catchUp: CatchUp = .none,
        clock: LoopClock = .continuous,
        executor: (any TaskExecutor)? = nil,
        logger: Logger = Logger.current,
        metrics: (any MetricsFactory)? = nil,
        tracer: (any Tracer)? = nil,
        fileID: String = #fileID,
        line: Int = #line,
        _ body: @escaping Body
    ) throws {
        try self.init(
            schedule: .times(times),
            count: count,
            reconnect: reconnect,
            name: name,
            missedTicks: missedTicks,
            timeout: timeout,
            onFailure: onFailure,
            randomizedDelay: randomizedDelay,
            firstIteration: firstIteration,
            store: store,
            catchUp: catchUp,
            clock: clock,
            executor: executor,
            logger: logger,
            metrics: metrics,
            tracer: tracer,
            fileID: fileID,
            line: line,
            body
        )
    }

    /// A loop on any ``Schedule``: an interval, times of day, a systemd calendar expression or a
    /// cron expression.
    ///
    /// - Parameters:
    ///   - schedule: when the iterations run.
    ///   - count: the number of successful iterations after which the loop ends; nil for no end.
    ///   - reconnect: whether errors of the handled types are retried after a back-off.
    ///   - name: the loop's name in logs, metrics, spans and the registry; when nil,
    ///     `File.swift:line` of the call that created the loop.
    ///   - missedTicks: what to do after an overrun; nil means `.delay` for intervals
    ///     and `.skip` for wall-clock schedules.
    ///   - timeout: the longest an iteration's body may run; the body is then cancelled and the
    ///     iteration fails with a ``LoopError`` of code ``LoopError/Code/timedOut``.
    ///   - onFailure: what an unhandled error does: end the loop (the default) or keep the
    ///     schedule.
    ///   - randomizedDelay: a random delay added to each iteration (systemd's
    ///     `RandomizedDelaySec=`); never moves the grid.
    ///   - firstIteration: when the first iteration runs: at start (the default), after one
    ///     interval, or at a given instant.
    ///   - store: where the loop records its runs (``FileRunStore``, or a store shared by
    ///     replicas): each slot is claimed before its body runs and runs only when the claim is
    ///     granted; interval slots then count from the Unix epoch. nil: nothing is recorded.
    ///   - catchUp: with a `store`, what runs at start of the slots missed while the process was
    ///     down: none (the default), the latest once, or every one up to a bound.
    ///   - clock: the clock intervals are measured on.
    ///   - executor: where the body and hooks run; when nil, the global executor (or, for a
    ///     ``LoopClock/precise-type.property`` clock, the precision engine's thread).
    ///   - logger: where the loop logs (`.debug` for retries, `.error` for a loop that died and
    ///     for an instant its schedule gave that is not after the last scheduled one; `.trace`
    ///     for each iteration when its level, read as a run's iterations begin, allows); by
    ///     default the task-local `Logger.current` of the caller.
    ///   - metrics: where iterations, errors, timeouts, missed ticks, body durations and wake
    ///     lateness are counted; when nil, swift-metrics' global `MetricsSystem.factory`.
    ///   - tracer: where each iteration's span goes; when nil, `InstrumentationSystem.tracer`.
    ///   - fileID: where the loop is created, for its default name.
    ///   - line: where the loop is created, for its default name.
    ///   - body: the iteration.
    /// - Throws: ``LoopError`` for a negative or too large interval, an empty list of times, a
    ///   `count` ≤ 0, an empty `name`, or an invalid option (``LoopError/Code/invalidOption``).
    public init(
        schedule: Schedule,
        count: Int? = nil,
        reconnect: Bool = true,
        name: String? = nil,
        missedTicks: MissedTickPolicy? = nil,
        timeout: Duration? = nil,
        onFailure: FailurePolicy = .endLoop,
        randomizedDelay: RandomizedDelay? = nil,
        firstIteration: FirstIteration = .atStart,
        store: (any RunStore)? = nil,
        catchUp: CatchUp = .none,
        clock: LoopClock = .continuous,
        executor: (any TaskExecutor)? = nil,
        logger: Logger = Logger.current,
        metrics: (any MetricsFactory)? = nil,
        tracer: (any Tracer)? = nil,
        fileID: String = #fileID,
        line: Int = #line,
        _ body: @escaping Body
    ) throws {
        try RelativeInterval.validate(schedule)
        if let count, count <= 0 {
            throw LoopError(.invalidCount, "count must be at least 1, got \(count)")
        }
        if let name, name.isEmpty {
            throw LoopError(.invalidOption, "name must not be empty; pass nil for the default name")
        }
        let name = name ?? DefaultLoopName.at(fileID: fileID, line: line)
        let policies = try LoopPolicies(
            name: name,
            timeout: timeout,
            onFailure: onFailure,
            randomizedDelay: randomizedDelay,
            firstIteration: firstIteration,
            hasStore: store != nil,
            catchUp: catchUp
        )
        self.body = body
        self.clock = clock
        self.name = name
        let instruments = LoopInstruments.make(name: name, metrics: metrics, tracer: tracer)
        if instruments != nil || policies.timeout != nil || store != nil || executor != nil {
            extras = Boxed(
                Extras(instruments: instruments, timeout: policies.timeout, store: store, executor: executor)
            )
        } else {
            extras = nil
        }
        self.recordsRuns = store != nil
        self.callsBodyDirectly = instruments == nil && policies.timeout == nil && store == nil
        self.state = LoopStorage(
            LoopStateMachine(
                schedule: schedule,
                count: count,
                reconnect: reconnect,
                missedTicks: missedTicks,
                intervalClock: clock.intervalClock,
                policies: policies,
                logger: logger
            )
        )
    }

    deinit {
        LoopRegistry.shared.unregister(place: registrySlot)
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
        let runner: Task<RunOutcome, Never>
        if admission.foundLoopIdle {
            // The task finds its run as the one that has not begun: see `launch(_:)`.
            runner = makeTask { await self.execute(nil) }
        } else {
            let id = admission.id
            runner = makeTask { await self.execute(id) }
        }
        attach(.awaited(runner), to: admission.id)
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
        for runTask in cancellations { runTask.cancel() }
    }

    /// Cancels the loop and starts it again once the cancelled run has finished; starts it when
    /// it is not running.
    public func restart() {
        let anchor = RunAnchor(now: clock)
        let engine = clock.engine
        let restart = state.withLock { state in
            let restart = state.restart(at: anchor)
            Self.activate(engine, for: restart.admission)
            return restart
        }
        for runTask in restart.cancellations { runTask.cancel() }
        LoopRegistry.shared.register(self)
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

    /// The fencing token of the slot whose body runs, granted by the loop's ``store``: strictly
    /// increasing per loop name across every process that shares the store. Pass it to your own
    /// writes so that a storage system can refuse those of a claim that has been superseded.
    /// nil outside a claimed body, and for a loop without a store.
    public var fencingToken: UInt64? { state.withLock { $0.claim?.fencingToken } }

    /// When the next iteration is scheduled; nil when the loop is not running or `stop()` was
    /// called. Unchanged while a failed iteration is retried.
    public var nextIteration: Date? {
        state.withLock({ $0.nextInstant })?.date(on: clock)
    }

    /// The slot the iteration in progress runs for: the scheduled instant (before any
    /// randomized delay or lateness), or, for a first iteration that runs at start, the start.
    /// Unchanged while a failed iteration is retried; nil outside a body (in the hooks, while
    /// sleeping, when not running).
    public var scheduledInstant: Date? {
        let slot: (scheduled: ScheduledInstant?, start: Date?)? = state.withLock { machine in
            guard let executing = machine.executing, let iteration = executing.iteration else { return nil }
            if let scheduled = iteration.scheduled { return (scheduled, nil) }
            guard let position = executing.position, case .start(let anchor) = position.basis else { return nil }
            return (nil, anchor.wall)
        }
        return slot?.scheduled?.date(on: clock) ?? slot?.start
    }

    /// True from `start()` until `afterLoop` has returned (so also inside the hooks).
    public var isRunning: Bool { state.withLock { $0.isRunning } }

    /// True while the run is being cancelled (inside `afterLoop` after `cancel()`).
    public var isBeingCancelled: Bool { state.withLock { $0.isBeingCancelled } }

    /// True from an unhandled error (already inside `onError`) until the next start.
    public var failed: Bool { state.withLock { $0.failed } }

    /// The task of the most recent `start()`; nil before the first.
    public var task: Task<Void, Never>? { state.withLock { $0.task } }

    // MARK: Operating

    /// Every loop of the process that has been started (by `start()`, `run()` or `restart()`)
    /// and not deallocated, in the order of their first start. The registry never keeps a loop
    /// alive: it holds a running loop, which its run keeps alive anyway, and lets go of it when
    /// its runs have ended.
    public static var registered: [Loop] { LoopRegistry.shared.loops }

    /// A snapshot of the loop: name, schedule, what it does, iteration, next iteration, and the
    /// outcome of its latest body.
    public var status: LoopStatus {
        let (machine, activity) = state.withLock { ($0.statistics, $0.activity) }
        let schedule = self.schedule
        return LoopStatus(
            name: name,
            schedule: "\(schedule)",
            activity: activity,
            currentLoop: currentLoop,
            nextIteration: nextIteration,
            lastStart: machine.lastStart.map { Date(nanosecondsSince1970: $0) },
            lastDuration: machine.lastDuration.map { Duration.nanoseconds($0) },
            lastError: machine.lastError,
            consecutiveFailures: machine.consecutiveFailures,
            failed: failed
        )
    }

    /// Whether the loop is making progress now, measured on the loop's own clock: `.stalled`
    /// when an iteration (its body, or the retries of a handled error) has run longer than
    /// `stallTimeout`, `.overdue` when the loop sleeps more than `overdueTolerance` past its next
    /// iteration's instant, `.failed` when its last run ended by an unhandled error.
    ///
    /// - Parameters:
    ///   - stallTimeout: the longest an iteration may run; nil means the loop's `timeout` plus
    ///     `overdueTolerance` when it has one, else no limit.
    ///   - overdueTolerance: how late a wake may be before the loop counts as overdue.
    public func health(stallTimeout: Duration? = nil, overdueTolerance: Duration = .seconds(30)) -> LoopHealth {
        let tolerance = max(overdueTolerance, .zero).nanoseconds
        let stall = stallTimeout.map { max($0, .zero).nanoseconds } ?? timeout.map { $0.addingClamped(tolerance) }
        let now = LoopNow(clock)
        return state.withLock { $0.health(now: now, stallTimeout: stall, tolerance: tolerance) }
    }

    // MARK: Test support

    /// Replaces the back-off jitter (a value in `0...upper` seconds) — for deterministic tests.
    package func setBackoffJitter(_ jitter: @escaping @Sendable (Double) -> Double) {
        state.withLock { $0.replaceJitter(jitter) }
    }

    /// Replaces the draw of a randomized delay (a value in `0...upper` nanoseconds) — for
    /// deterministic tests.
    package func setRandomDelay(_ random: @escaping @Sendable (Int64) -> Int64) {
        state.withLock { $0.replaceRandomDelay(random) }
    }

    // MARK: Plumbing

    private func admitRun(stopped stopRequested: () -> Bool = { false }) throws -> LoopStateMachine.Admission {
        let anchor = RunAnchor(now: clock)
        // `stopRequested` is asked under the lock, so a shutdown is seen either here or by stop().
        let engine = clock.engine
        let admission = try state.withLock { state in
            let admission = try state.admit(at: anchor, stopped: stopRequested())
            Self.activate(engine, for: admission)
            return admission
        }
        LoopRegistry.shared.register(self)
        return admission
    }

    /// Tells the engine that an idle loop became active (so virtual time waits for it), under
    /// the loop's lock: once `isRunning` can be read as true, the engine counts the loop — else
    /// a test that saw the loop running could advance time past its first slot. The engine's
    /// counter is a leaf lock that never calls back into a loop.
    private static func activate(_ engine: any LoopEngine, for admission: LoopStateMachine.Admission) {
        if admission.foundLoopIdle { engine.loopDidActivate() }
    }

    /// Starts an admitted run in a task of its own and returns the task.
    @discardableResult
    private func launch(_ admission: LoopStateMachine.Admission) -> Task<Void, Never> {
        let task: Task<Void, Never>
        if admission.foundLoopIdle {
            // A run admitted while the loop was idle is the one run that has not begun, which
            // its task finds without being told its id (``LoopStateMachine/beginning(of:)``):
            // a closure that holds only the loop is 16 bytes of heap smaller for the run's life.
            task = makeTask { _ = await self.execute(nil) }
        } else {
            let id = admission.id
            task = makeTask { _ = await self.execute(id) }
        }
        attach(.started(task), to: admission.id)
        return task
    }

    private func attach(_ runTask: RunTask, to id: UInt64) {
        switch state.withLock({ $0.attach(runTask, to: id) }) {
        case .none:
            break
        case .cancelTask(let runTask):
            runTask.cancel()
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
