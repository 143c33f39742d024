import Foundation
import Logging

/// Everything about a ``Loop`` that changes, kept behind the loop's lock, in the shape of
/// swift-service-lifecycle's `UnixSignalsSequence` state machine: every event is a method that
/// switches over the lifecycle exhaustively and returns a named action; the caller performs the
/// action (resume, cancel, sleep, run a hook, log) once the lock is released. No other code
/// writes the state.
struct LoopStateMachine {
    typealias Hook = @Sendable (Loop) async throws -> Void
    typealias ErrorHook = @Sendable (Loop, any Error) async -> Void

    /// One accepted `start()`/`run()`/`restart()`.
    struct Run {
        let id: UInt64
        /// Finished when this run has ended; the run accepted after it awaits this. Made when
        /// that run is accepted (most runs never have one to wait for them: a completion for
        /// each cost every loop 112 bytes).
        var completion: RunCompletion?
        /// The run's task, to cancel; nil until it is attached.
        var task: RunTask?
        // The flags last: the executing run's own flags follow them in the bytes the layout
        // would leave empty.
        var stopRequested: Bool
        var cancelRequested = false
    }

    /// What the executing run is doing.
    ///
    /// The iteration whose body runs is the payload of the two phases that have one, not a
    /// field beside the phase: a sleeping run has none, so the pending slot and the iteration
    /// share their bytes (a field of its own cost every loop 64 bytes).
    enum Phase {
        /// Accepted, its task not yet past its predecessor. `anchor`: when the run was
        /// accepted, for a run accepted while the loop was idle (its grid begins there); nil
        /// for a run that was queued behind another (its grid begins when it begins).
        case starting(anchor: RunAnchor?)
        case beforeLoop
        /// Sleeping until the slot of `pending`.
        case sleeping(PendingSlot)
        /// Sleeping until the back-off of a handled error has passed, then running the body
        /// of `iteration` again.
        case retrying(IterationRecord?)
        /// Running the body of `iteration`; nil once that body has ended (or its slot was
        /// refused) and before the run decides what comes next.
        case body(IterationRecord?)
        case afterLoop

        var isRetrying: Bool {
            if case .retrying = self { return true }
            return false
        }

        /// The iteration whose body runs or is retried.
        var iteration: IterationRecord? {
            switch self {
            case .body(let iteration), .retrying(let iteration):
                return iteration
            case .starting, .beforeLoop, .sleeping, .afterLoop:
                return nil
            }
        }
    }

    /// The slot a sleeping run waits for, with the schedule version it was decided on.
    ///
    /// Its fields and the iteration record's are ordered so that each 9-byte instant is followed
    /// by what fits the bytes its alignment leaves: the phase that holds either is 8 bytes
    /// smaller, and so is every sleeping loop.
    struct PendingSlot {
        let version: ScheduleVersion
        /// The sleep's deadline on `clock`: the slot plus its randomized delay.
        let deadline: Int64
        let following: ScheduledInstant?
        let clock: EngineClock
        let slot: ScheduledInstant
    }

    /// The iteration whose body runs (or is being retried): what logs, metrics, spans and the
    /// health check report about it.
    struct IterationRecord: Sendable {
        /// When the current attempt of the body began, on the interval clock and the wall clock.
        var started: LoopNow
        /// When the first attempt began (interval clock): where a stall is measured from.
        let began: Int64
        /// How late the first attempt began after the instant the run meant to wake (the slot
        /// plus its randomized delay), in nanoseconds; 0 for a first iteration run at start.
        let lateness: Int64
        /// `currentLoop` when it began.
        let iteration: Int
        /// The slot it runs for (last: see ``PendingSlot``).
        let scheduled: ScheduledInstant?
    }

    /// What the registry reports about the runs so far (kept across runs).
    struct Statistics: Sendable {
        // `Int64.min` for none: two optionals took 32 bytes with their padding, in every loop.
        private var lastStartOrMin = Int64.min
        private var lastDurationOrMin = Int64.min
        /// Wall-clock nanoseconds when the latest body attempt began.
        var lastStart: Int64? {
            get { lastStartOrMin == .min ? nil : lastStartOrMin }
            set { lastStartOrMin = newValue ?? .min }
        }
        /// How long the latest finished body attempt took, in nanoseconds (never negative).
        var lastDuration: Int64? {
            get { lastDurationOrMin == .min ? nil : lastDurationOrMin }
            set { lastDurationOrMin = newValue ?? .min }
        }
        /// The error of the latest failed body attempt (handled or not; cleared by a success).
        var lastError: (any Error)?
        /// Body attempts that threw since the last success (retried ones included).
        var consecutiveFailures = 0
    }

    /// The run whose code executes (from its start until `afterLoop` returned).
    ///
    /// Stored in the state machine itself (``current``), beside the lifecycle rather than as its
    /// payload: a transition changes it where it is, under the loop's lock, with no copy out of
    /// an enum and back (as a payload it was a 257-byte copy and a retain of each reference,
    /// twice a tick), and without an object of its own (as a class it cost every loop a
    /// 192-byte allocation besides the state's).
    struct ExecutingRun {
        // In declaration order, which is the layout's: each field starts where the one before
        // it ends, padded only to its own alignment. Ordered so that one-byte fields fill the
        // bytes an alignment would leave empty: every byte here is a byte of every loop.
        var run: Run
        // The three flags follow the run's own, in the bytes its alignment would leave empty.
        /// Whether the run slept since its last body: back-to-back bodies yield in between.
        var sleptSinceBody = false
        /// Set while the run waits to retry its failed run store.
        var waitingForStore = false
        /// Whether the loop's logger took `.trace` lines when the iterations began.
        var tracesIterations = false
        var phase: Phase
        /// What `nextIteration` reports.
        var next: ScheduledInstant?
        var position: SchedulePosition?
        var backoff = Backoff()

        /// What ``current`` holds while the loop is idle: no run (run ids begin at 1), nothing
        /// retained.
        static let none = ExecutingRun(Run(id: 0, stopRequested: false))

        init(_ run: Run, anchor: RunAnchor? = nil) {
            self.run = run
            self.phase = .starting(anchor: anchor)
        }

        /// The iteration whose body runs or is retried (``Phase/iteration``).
        var iteration: IterationRecord? { phase.iteration }

        /// Replaces the iteration of the phase that has one; other phases have none to replace.
        mutating func replaceIteration(with iteration: IterationRecord?) {
            switch phase {
            case .body: phase = .body(iteration)
            case .retrying: phase = .retrying(iteration)
            case .starting, .beforeLoop, .sleeping, .afterLoop: break
            }
        }
    }

    enum Lifecycle {
        /// No run accepted, or every accepted run has ended.
        case idle
        /// One run executes (``current``); runs accepted after `cancel()` wait for it, in
        /// order (each awaits the completion of the one before it).
        case running(queued: [Run])
    }

    // MARK: Configuration

    private(set) var schedule: Schedule {
        didSet { alignDecisionSchedule() }
    }
    /// What slots are decided on: `schedule`, or, for an interval loop with a run store, the same
    /// interval counted from the Unix epoch on the wall clock (``Schedule/alignedToEpoch``), so
    /// that restarts and replicas agree on the slots. (Kept with the customizations: a field of
    /// its own took every loop 8 bytes, for loops with a store.)
    var decisionSchedule: Schedule { customizations?.alignedSchedule ?? schedule }
    /// Bumped by every schedule change, so that a run notices it.
    private(set) var scheduleVersion: ScheduleVersion = 0
    /// The id of the next run accepted; never 0, the id of no run (``ExecutingRun/none``). 32
    /// bits, in the bytes after the schedule version: ids tell apart the few runs alive at
    /// once, which a wrap after 2³² runs cannot make equal.
    private var nextRunID: UInt32 = 1
    /// `count`, or 0 for none (a count is at least 1): an `Int?` took 8 bytes more with its
    /// padding.
    private let countOrZero: Int
    /// The number of successful iterations after which a run ends; nil for no end.
    var count: Int? { countOrZero == 0 ? nil : countOrZero }
    let policies: LoopPolicies
    /// The logger the loop was given (``Loop/injectedLogger``): kept here, read under the lock
    /// on the rare paths that log, because here it fits the bytes the state's allocation rounds
    /// up to anyway, and in the `Loop` it took every loop 16 bytes more.
    let logger: Logger
    private(set) var errorFilter = ErrorFilter.defaults
    // The one-byte fields follow the 9-byte error filter, in the bytes its alignment would
    // leave empty.
    let reconnect: Bool
    /// The policy the user chose; nil means the default of the schedule's kind.
    let missedTicksChoice: MissedTickPolicy?
    let intervalClock: EngineClock
    /// True from an unhandled error until the next run begins.
    private(set) var failed = false
    /// The hooks, test overrides and other rare values; nil until one is set.
    private var customizations: Customizations?
    var beforeLoop: Hook? { customizations?.beforeLoop }
    var afterLoop: Hook? { customizations?.afterLoop }
    var onError: ErrorHook? { customizations?.onError }
    /// Returns a value in `0...upper`; replaceable so tests can pin the back-off.
    var jitter: @Sendable (Double) -> Double { customizations?.jitter ?? Self.randomJitter }
    /// Returns a value in `0...upper` nanoseconds for a randomized delay; replaceable for tests.
    var randomDelay: @Sendable (Int64) -> Int64 { customizations?.randomDelay ?? Self.randomNanoseconds }
    private static let randomJitter: @Sendable (Double) -> Double = { upper in Double.random(in: 0...upper) }
    private static let randomNanoseconds: @Sendable (Int64) -> Int64 = { upper in Int64.random(in: 0...upper) }

    // MARK: Lifecycle

    private(set) var lifecycle = Lifecycle.idle
    /// The executing run while the lifecycle is `.running`; ``ExecutingRun/none`` while idle.
    private(set) var current = ExecutingRun.none
    /// The task of the most recent `start()`: the public `task`.
    private(set) var task: Task<Void, Never>?
    /// Kept after a run ends, reset when the next one begins.
    private(set) var currentLoop = 0
    private(set) var statistics = Statistics()
    /// The run store's claim under which the body runs; boxed, since only loops with a store
    /// ever have one (inline, it cost every loop 40 bytes).
    private var claimBox: Boxed<SlotClaim>?
    var claim: SlotClaim? { claimBox?.value }

    init(
        schedule: Schedule,
        count: Int?,
        reconnect: Bool,
        missedTicks: MissedTickPolicy?,
        intervalClock: EngineClock,
        policies: LoopPolicies = LoopPolicies(),
        logger: Logger
    ) {
        self.schedule = schedule
        self.countOrZero = count ?? 0
        self.reconnect = reconnect
        self.missedTicksChoice = missedTicks
        self.intervalClock = intervalClock
        self.policies = policies
        self.logger = logger
        alignDecisionSchedule()
    }

    var missedTicks: MissedTickPolicy {
        missedTicksChoice ?? (schedule.isWallClock ? .skip : .delay)
    }

    // MARK: Configuration events (they take effect at the run's next use of them)

    mutating func register(beforeLoop hook: @escaping Hook) {
        customizations = Customizations(customizations, changing: { $0.beforeLoop = hook })
    }
    mutating func register(afterLoop hook: @escaping Hook) {
        customizations = Customizations(customizations, changing: { $0.afterLoop = hook })
    }
    mutating func register(onError handler: @escaping ErrorHook) {
        customizations = Customizations(customizations, changing: { $0.onError = handler })
    }
    mutating func addErrorTypes(_ types: [any Error.Type]) { errorFilter.add(types) }
    mutating func removeErrorTypes(_ types: [any Error.Type]) -> Bool { errorFilter.remove(types) }
    mutating func clearErrorTypes() { errorFilter.clear() }
    mutating func replaceJitter(_ newJitter: @escaping @Sendable (Double) -> Double) {
        customizations = Customizations(customizations, changing: { $0.jitter = newJitter })
    }
    mutating func replaceRandomDelay(_ newRandom: @escaping @Sendable (Int64) -> Int64) {
        customizations = Customizations(customizations, changing: { $0.randomDelay = newRandom })
    }

    // MARK: Reading

    var isRunning: Bool {
        switch lifecycle {
        case .idle: return false
        case .running: return true
        }
    }

    var isBeingCancelled: Bool {
        isRunning && current.run.cancelRequested
    }

    /// The executing run, copied; nil when idle.
    var executing: ExecutingRun? {
        isRunning ? current : nil
    }

    /// Whether the executing run has been asked to stop; true when idle (nothing runs on).
    var isStopRequested: Bool {
        !isRunning || current.run.stopRequested
    }

    /// The iteration whose body the executing run runs or retries; nil when idle.
    var currentIteration: IterationRecord? {
        isRunning ? current.iteration : nil
    }

    /// Whether run `id` is the executing one: a run's own events change nothing once another
    /// run executes (or none). (While idle, ``current`` is ``ExecutingRun/none``, whose id no
    /// run has.)
    private func isExecuting(_ id: UInt64) -> Bool {
        current.run.id == id
    }

    /// The next iteration's instant; nil when idle or stopping.
    var nextInstant: ScheduledInstant? {
        guard isRunning, !current.run.stopRequested else { return nil }
        return current.next
    }

    // MARK: Admission

    struct Admission {
        let id: UInt64
        /// The loop was idle: the run executes at once, and the caller tells the engine that
        /// the loop became active. (How the run begins — at its anchor, or after the run before
        /// it — its task asks when it starts: ``beginning(of:)``.)
        let foundLoopIdle: Bool
    }

    /// `start()` / `run()`: accepted when no run is active, or every active run is being
    /// cancelled (the new run then begins once they have finished). `stopped` is true for a run
    /// that a graceful shutdown reached before it existed: it is admitted already stopped.
    mutating func admit(at anchor: RunAnchor, stopped: Bool) throws -> Admission {
        switch lifecycle {
        case .idle:
            break
        case .running(let queued):
            let latest = queued.last ?? current.run
            if !latest.cancelRequested {
                throw LoopError(
                    .alreadyRunning,
                    "the loop is already running; call stop() or cancel() first, or restart()"
                )
            }
        }
        return accept(at: anchor, stopped: stopped)
    }

    /// What `restart()` does, in one transition: cancels every active run and accepts a new one.
    struct RestartAction {
        let cancellations: [RunTask]
        let admission: Admission
    }

    /// `restart()`: `cancel()` and `start()` at once, so that no other call can slip between them.
    mutating func restart(at anchor: RunAnchor) -> RestartAction {
        let cancellations = cancelAll()
        return RestartAction(cancellations: cancellations, admission: accept(at: anchor, stopped: false))
    }

    private mutating func accept(at anchor: RunAnchor, stopped: Bool) -> Admission {
        let id = UInt64(nextRunID)
        nextRunID = nextRunID == .max ? 1 : nextRunID + 1
        let run = Run(id: id, stopRequested: stopped)
        switch lifecycle {
        case .idle:
            // An idle loop's last run has finished already: the new one awaits nothing and its
            // grid begins at `anchor`.
            beginExecuting(ExecutingRun(run, anchor: anchor), queued: [])
            return Admission(id: id, foundLoopIdle: true)
        case .running(var queued):
            // The run accepted last (queued, or the executing one) gets its completion now, so
            // that the runs form one chain in the order they were accepted.
            let completion = RunCompletion()
            if queued.isEmpty {
                current.run.completion = completion
            } else {
                queued[queued.count - 1].completion = completion
            }
            queued.append(run)
            lifecycle = .running(queued: queued)
            return Admission(id: id, foundLoopIdle: false)
        }
    }

    /// How a run begins, as its task finds it when it starts.
    enum Beginning {
        /// At once, its grid anchored at `anchor`: the run was accepted while the loop was idle.
        case at(RunAnchor)
        /// Once `predecessor` has finished: the run was accepted behind it.
        case after(RunCompletion)
        /// At once, its grid anchored now: the run it was queued behind has ended already.
        case now
    }

    /// A run's task asks which run it executes and how that run begins, when it starts,
    /// instead of being told in its closure: a closure that holds only the loop is 16 bytes of
    /// heap smaller, for as long as the run lasts, than one that also holds the run's id.
    ///
    /// `id` is nil for the task of a run admitted while the loop was idle (``Admission/foundLoopIdle``),
    /// whose closure holds only the loop. That run is the executing one from its admission, and
    /// it stays in `.starting` until its task begins it (only its task moves it on or ends it),
    /// so the task finds it there; every other task names its run. Nil when there is no such
    /// run, which the lifecycle rules out.
    func beginning(of id: UInt64?) -> (id: UInt64, beginning: Beginning)? {
        guard case .running(let queued) = lifecycle else {
            return id.map { ($0, .now) }
        }
        guard let id else {
            guard case .starting(let anchor?) = current.phase else { return nil }
            return (current.run.id, .at(anchor))
        }
        if current.run.id == id {
            if case .starting(let anchor?) = current.phase { return (id, .at(anchor)) }
            return (id, .now)
        }
        guard let index = queued.firstIndex(where: { $0.id == id }) else { return (id, .now) }
        // Each run's completion is made when the run after it is accepted.
        let predecessor = index == 0 ? current.run.completion : queued[index - 1].completion
        return (id, predecessor.map { .after($0) } ?? .now)
    }

    /// What the caller of ``attach(publicTask:cancel:to:)`` does.
    enum AttachAction {
        case none
        /// The run was cancelled before its task existed: cancel the task now.
        case cancelTask(RunTask)
    }

    /// Records the task of run `id`, to cancel it; a task of `start()` becomes the loop's
    /// public `task` too (the one `run()` awaits leaves it alone).
    mutating func attach(_ runTask: RunTask, to id: UInt64) -> AttachAction {
        if case .started(let publicTask) = runTask { task = publicTask }
        switch lifecycle {
        case .idle:
            // The run has ended already.
            return .none
        case .running(var queued):
            if current.run.id == id {
                current.run.task = runTask
                return current.run.cancelRequested ? .cancelTask(runTask) : .none
            }
            guard let index = queued.firstIndex(where: { $0.id == id }) else { return .none }
            queued[index].task = runTask
            lifecycle = .running(queued: queued)
            return queued[index].cancelRequested ? .cancelTask(runTask) : .none
        }
    }

    // MARK: stop, cancel, schedule changes

    /// What the caller of ``requestStop()`` and ``changeSchedule(to:now:)`` does.
    enum WakeAction {
        case none
        /// End the executing run's sleep, so that it re-decides.
        case wakeSleeper
    }

    /// `stop()`: every active run finishes its iteration and exits.
    mutating func requestStop() -> WakeAction {
        switch lifecycle {
        case .idle:
            return .none
        case .running(var queued):
            current.run.stopRequested = true
            for index in queued.indices { queued[index].stopRequested = true }
            lifecycle = .running(queued: queued)
            return .wakeSleeper
        }
    }

    /// `cancel()`: marks every active run cancelled; returns their tasks, to cancel.
    mutating func requestCancel() -> [RunTask] {
        cancelAll()
    }

    private mutating func cancelAll() -> [RunTask] {
        switch lifecycle {
        case .idle:
            return []
        case .running(var queued):
            var cancellations: [RunTask] = []
            current.run.cancelRequested = true
            if let runTask = current.run.task { cancellations.append(runTask) }
            for index in queued.indices {
                queued[index].cancelRequested = true
                if let runTask = queued[index].task { cancellations.append(runTask) }
            }
            lifecycle = .running(queued: queued)
            return cancellations
        }
    }

    /// `changeInterval` / `changeSchedule`: the new schedule, and at once the next instant it
    /// gives the executing run, so that `nextIteration` is right as soon as the change returns.
    mutating func changeSchedule(to newSchedule: Schedule, now: LoopNow) -> WakeAction {
        schedule = newSchedule
        scheduleVersion &+= 1
        switch lifecycle {
        case .idle:
            return .none
        case .running:
            // Before the first iteration the run has no slot to count from: it decides when it
            // gets there.
            if let position = current.position, case .slot = position.basis {
                current.next = decide(after: position, now: now).reportedNext
            }
            return .wakeSleeper
        }
    }

    // MARK: A run's own events

    /// What a run does when it begins executing.
    enum BeginAction {
        /// Cancelled before it began: straight to `afterLoop`, no `beforeLoop`.
        case cancelled
        case runBeforeLoop(Hook?)
    }

    /// Run `id` has got past its predecessor and begins.
    mutating func runBegins(_ id: UInt64) -> BeginAction {
        guard isExecuting(id) else { return .cancelled }
        if current.run.cancelRequested {
            // Begun all the same, straight towards its end: its admission's anchor is spent,
            // so that no task takes it for a run that has not begun (``beginning(of:)``).
            current.phase = .starting(anchor: nil)
            return .cancelled
        }
        current.phase = .beforeLoop
        return .runBeforeLoop(beforeLoop)
    }

    /// What a run does next between iterations.
    enum IterationAction {
        /// The run ends normally (`stop()`, `count`, or the schedule has no more instants).
        case end
        /// Sleep until `deadline` on `clock`, then report ``woke(_:reason:now:)``.
        case sleep(deadline: Int64, clock: EngineClock)
        /// Run the body now; `yieldFirst` when no sleep came since the last body, so that
        /// back-to-back iterations (interval 0, overruns) still let other tasks run.
        case runBody(yieldFirst: Bool)
    }

    /// The result of a run event: the action, and what to report outside the lock.
    struct Step {
        var action: IterationAction
        /// Misbehaving schedule answers that were skipped; nil (usually) when none, so that a
        /// step holds no array to retain and release.
        var rejectedSlots: [RejectedSlot]? = nil
        /// Slots that passed without an iteration of their own (an overrun resolved by the
        /// missed-tick policy).
        var missedTicks: Int64 = 0
        /// Set when a body attempt that just succeeded is reported: its duration (nanoseconds).
        var finishedDuration: Int64?
        /// Set when the action is `.runBody`: the iteration that begins.
        var began: IterationRecord?
        /// Whether the end and the beginning of an iteration are logged at `.trace`.
        var traces = false

        /// Misbehaving schedule answers that were skipped.
        var rejected: [RejectedSlot] { rejectedSlots ?? [] }
    }

    /// `beforeLoop` has returned (or there is none): the run's grid starts at `anchor`.
    mutating func iterationsBegin(_ id: UInt64, anchor: RunAnchor, traces: Bool = false, now: LoopNow) -> Step {
        guard isExecuting(id) else { return Step(action: .end) }
        current.tracesIterations = traces
        current.position = SchedulePosition(basis: .start(anchor), version: scheduleVersion)
        return decideStep(now: now)
    }

    /// Run `id`'s sleep ended for `reason`.
    mutating func woke(_ id: UInt64, reason: WakeReason, now: LoopNow) -> Step {
        guard isExecuting(id) else { return Step(action: .end) }
        current.sleptSinceBody = true
        guard case .sleeping(let pending) = current.phase else { return decideStep(now: now) }
        // A wake so late that the following slot has passed too (the machine was suspended,
        // the process stalled) is an overrun: re-decide with the policy. A wake that is merely
        // late keeps the grid, so timer latency never causes drift. A schedule change, a
        // clock step or stop() re-decides too.
        let onSchedule = reason == .deadlineReached
            && pending.version == scheduleVersion
            && !current.run.stopRequested
            && !(pending.following?.isDue(at: now) ?? false)
        guard onSchedule else { return decideStep(now: now) }
        current.position = SchedulePosition(basis: .slot(pending.slot), version: pending.version)
        current.next = pending.following
        return beginBody(lateness: lateness(of: pending, now: now), now: now)
    }

    /// Run `id`'s body returned: counts the iteration and decides the next.
    mutating func bodySucceeded(_ id: UInt64, now: LoopNow) -> Step {
        guard isExecuting(id) else { return Step(action: .end) }
        currentLoop += 1
        current.backoff.reset()
        current.sleptSinceBody = false
        let duration = current.iteration.map { max(0, now.elapsed.subtractingClamped($0.started.elapsed)) }
        bodyEnded(now: now, error: nil)
        var step: Step
        if let count, currentLoop >= count {
            step = Step(action: .end)
        } else {
            step = decideStep(now: now)
        }
        step.finishedDuration = duration
        step.traces = current.tracesIterations
        return step
    }

    // MARK: Run store events

    /// The store granted `claim` for the iteration that begins: its body runs under it, for
    /// `earlierSlot` when the store handed over a lapsed slot instead of the one asked for. The
    /// body begins now, so its duration and its stall are measured from here, not from before a
    /// claim that had to wait for the store.
    mutating func slotClaimed(_ id: UInt64, claim: SlotClaim, earlierSlot: Date?, now: LoopNow) {
        guard isExecuting(id) else { return }
        claimBox = Boxed(claim)
        if let record = current.iteration {
            current.replaceIteration(with: IterationRecord(
                started: now,
                began: now.elapsed,
                lateness: record.lateness,
                iteration: record.iteration,
                scheduled: earlierSlot.map { .wall($0) } ?? record.scheduled
            ))
            statistics.lastStart = now.wall
        }
    }

    /// Run `id`'s run store failed: the run waits to retry it (`waiting`), or it answered
    /// again (`!waiting`).
    mutating func storeWait(_ id: UInt64, waiting: Bool) {
        guard isExecuting(id) else { return }
        current.waitingForStore = waiting
    }

    /// The claimed body has ended (the store was told how): no token any more.
    mutating func claimReleased(_ id: UInt64) {
        guard isExecuting(id) else { return }
        claimBox = nil
    }

    /// The store refused the slot (it ran, or runs, elsewhere): the iteration does not happen
    /// and does not count; the run goes on with the next slot.
    mutating func slotRefused(_ id: UInt64, now: LoopNow) -> Step {
        guard isExecuting(id) else { return Step(action: .end) }
        current.replaceIteration(with: nil)
        return decideStep(now: now)
    }

    /// A slot that the run-store protocol picks begins now: a missed slot caught up on at start,
    /// or, after the body of a lapsed earlier slot, the slot the run was at (nil when it had
    /// none), claimed again.
    mutating func slotBegins(_ id: UInt64, slot: ScheduledInstant?, now: LoopNow) -> Step {
        guard isExecuting(id) else { return Step(action: .end) }
        guard !current.run.stopRequested else { return Step(action: .end) }
        if let count, currentLoop >= count { return Step(action: .end) }
        if let slot { current.position = SchedulePosition(basis: .slot(slot), version: scheduleVersion) }
        return beginBody(lateness: slot?.lateness(at: now) ?? 0, now: now)
    }

    /// Records the end of a body attempt in the statistics.
    private mutating func bodyEnded(now: LoopNow, error: (any Error)?) {
        if let started = current.iteration?.started {
            statistics.lastDuration = max(0, now.elapsed.subtractingClamped(started.elapsed))
        }
        if let error {
            statistics.lastError = error
            statistics.consecutiveFailures += 1
        } else {
            statistics.lastError = nil
            statistics.consecutiveFailures = 0
            current.replaceIteration(with: nil)
        }
    }

    /// What a run does after its body threw.
    enum BodyFailureAction {
        /// Retry after the back-off: sleep until `deadline` on `clock`, not interruptible by
        /// `stop()` (as in disnake), then run the body again.
        case retry(deadline: Int64, clock: EngineClock, delay: Int64)
        /// The error ends the run.
        case rethrow
        /// The run is being cancelled: the error is the cancellation.
        case cancelled
        /// The error is unhandled and the failure policy keeps the schedule: call `onError` (nil:
        /// log it), then report ``failureReported(_:now:)`` to go on with the next slot.
        case reportAndContinue(onError: ErrorHook?)
    }

    /// Run `id`'s body threw `error`: retried when `reconnect` handles it.
    mutating func bodyThrew(_ id: UInt64, error: any Error, now: LoopNow) -> BodyFailureAction {
        guard isExecuting(id) else { return .rethrow }
        let cancelled = error is CancellationError || current.run.cancelRequested
        if !cancelled { bodyEnded(now: now, error: error) }
        guard reconnect, !cancelled, errorFilter.handles(error) else {
            if cancelled { return .cancelled }
            if policies.failure.keepsSchedule {
                failed = true
                return .reportAndContinue(onError: onError)
            }
            return .rethrow
        }
        let delay = current.backoff.delay(now: now.elapsed, jitter: jitter)
        current.phase = .retrying(current.iteration)
        return .retry(deadline: now.elapsed.addingClamped(delay), clock: intervalClock, delay: delay)
    }

    /// The back-off of a retry has passed: the body runs again.
    mutating func retryDue(_ id: UInt64, now: LoopNow) {
        guard isExecuting(id) else { return }
        var iteration = current.iteration
        iteration?.started = now
        current.phase = .body(iteration)
        statistics.lastStart = now.wall
    }

    /// `onError` has handled an unhandled error under ``FailurePolicy/keepSchedule``: the run
    /// goes on with the slot after the failed one.
    mutating func failureReported(_ id: UInt64, now: LoopNow) -> Step {
        guard isExecuting(id) else { return Step(action: .end) }
        current.replaceIteration(with: nil)
        current.backoff.reset()
        current.sleptSinceBody = false
        return decideStep(now: now)
    }

    /// How a run ended, as the run reports it.
    enum Ending {
        /// By `stop()`, `count`, or the end of the schedule.
        case finished
        /// The run's code threw; `taskCancelled` when its task was cancelled at that point.
        case threw(any Error, taskCancelled: Bool)
    }

    /// What a run does after its iterations, before `afterLoop`.
    enum EndingAction {
        case finished
        /// Cancelled by `cancel()` or by cancellation of its task: no `onError`, `failed` unset.
        case cancelled
        /// An unhandled error: `failed` is set; call `onError` (nil: log the error).
        case failed(any Error, onError: ErrorHook?)
    }

    mutating func iterationsEnded(_ id: UInt64, _ ending: Ending) -> EndingAction {
        guard isExecuting(id) else { return .cancelled }
        current.next = nil
        switch ending {
        case .finished:
            return .finished
        case .threw(let error, let taskCancelled):
            if taskCancelled || current.run.cancelRequested {
                // Whatever the body threw while being cancelled is the cancellation itself.
                current.run.cancelRequested = true
                return .cancelled
            }
            failed = true
            return .failed(error, onError: onError)
        }
    }

    /// `onError` (if any) has returned: the run's `afterLoop` to run.
    mutating func afterLoopBegins(_ id: UInt64) -> Hook? {
        guard isExecuting(id) else { return nil }
        current.phase = .afterLoop
        return afterLoop
    }

    /// What the caller of ``runEnded(_:)`` does.
    enum EndAction {
        case none
        /// The loop is idle now: tell the engine.
        case deactivateEngine
        /// The next queued run executes now: finish the completion it awaits.
        case handOver(RunCompletion)
    }

    /// Run `id`'s `afterLoop` returned: the next queued run (if any) becomes the executing one.
    mutating func runEnded(_ id: UInt64) -> EndAction {
        switch lifecycle {
        case .idle:
            return .none
        case .running(var queued):
            guard current.run.id == id else { return .none }
            guard !queued.isEmpty else {
                lifecycle = .idle
                current = .none
                return .deactivateEngine
            }
            // The successor was accepted behind this run, which got its completion then.
            let completion = current.run.completion
            let successor = queued.removeFirst()
            beginExecuting(ExecutingRun(successor), queued: queued)
            return completion.map { .handOver($0) } ?? .none
        }
    }

    // MARK: Deciding

    private mutating func decideStep(now: LoopNow) -> Step {
        guard !current.run.stopRequested, let position = current.position else {
            current.next = nil
            return Step(action: .end)
        }
        let decision = decide(after: position, now: now)
        let rejected = newRejections(decision.rejected)
        switch decision.step {
        case .end:
            current.next = nil
            return Step(action: .end, rejectedSlots: rejected)
        case .runNow(let slot, let next):
            let delay = position.isStart ? randomizedDelay() : 0
            if delay > 0, case .elapsed(let instant) = slot {
                // The first iteration of an interval loop waits for its delay like any other.
                let following = next
                let deadline = instant.addingClamped(delay)
                return sleep(until: deadline, on: intervalClock, slot: slot, following: following, rejected: rejected)
            }
            current.position = SchedulePosition(basis: .slot(slot), version: scheduleVersion)
            current.next = next
            var step = beginBody(lateness: slot.lateness(at: now), now: now)
            step.rejectedSlots = rejected
            step.missedTicks = decision.missedTicks
            return step
        case .sleep(let deadline, let clock, let slot, let following):
            let delay = randomizedDelay()
            return sleep(until: deadline.addingClamped(delay), on: clock, slot: slot, following: following, rejected: rejected)
        }
    }

    private mutating func sleep(
        until deadline: Int64,
        on clock: EngineClock,
        slot: ScheduledInstant,
        following: ScheduledInstant?,
        rejected: [RejectedSlot]?
    ) -> Step {
        current.phase = .sleeping(
            PendingSlot(version: scheduleVersion, deadline: deadline, following: following, clock: clock, slot: slot)
        )
        current.next = slot
        return Step(action: .sleep(deadline: deadline, clock: clock), rejectedSlots: rejected)
    }

    /// The randomized delay of the next slot, in nanoseconds (0 without one). Inlined, with the
    /// draw out of line: called out of line, it was handed a copy of the whole state machine
    /// (200 bytes) on every decision.
    @inline(__always)
    private func randomizedDelay() -> Int64 {
        guard let delay = policies.delay else { return 0 }
        return Self.draw(delay, random: randomDelay)
    }

    @inline(never)
    private static func draw(_ delay: LoopPolicies.Delay, random: @Sendable (Int64) -> Int64) -> Int64 {
        if let fixed = delay.fixedOffset { return fixed }
        return delay.maximum > 0 ? min(max(random(delay.maximum), 0), delay.maximum) : 0
    }

    /// How late a wake for `pending` is: from its deadline (the slot plus its delay) to now.
    private func lateness(of pending: PendingSlot, now: LoopNow) -> Int64 {
        // A pending slot's deadline is on the wall clock or on the interval clock.
        let reached = pending.clock == .realtime ? now.wall : now.elapsed
        return max(0, reached.subtractingClamped(pending.deadline))
    }

    /// Keeps ``decisionSchedule`` in step with `schedule`.
    private mutating func alignDecisionSchedule() {
        guard policies.alignsToEpoch else { return }
        let aligned = schedule.alignedToEpoch
        customizations = Customizations(customizations, changing: { $0.alignedSchedule = aligned })
    }

    /// `run` becomes the executing run, with `queued` behind it: its iterations count from 0,
    /// `failed` is cleared, and it has reported no misbehaving instant yet.
    private mutating func beginExecuting(_ run: ExecutingRun, queued: [Run]) {
        current = run
        lifecycle = .running(queued: queued)
        currentLoop = 0
        failed = false
        if customizations?.lastRejected != nil {
            customizations = Customizations(customizations, changing: { $0.lastRejected = nil })
        }
    }

    @inline(__always)
    private func decide(after position: SchedulePosition, now: LoopNow) -> SlotDecision {
        SlotDecision.decide(
            decisionSchedule,
            version: scheduleVersion,
            after: position,
            policy: missedTicks,
            intervalClock: intervalClock,
            firstIteration: policies.firstIteration,
            keepsSlotsOnOverrun: policies.alignsToEpoch,
            now: now
        )
    }

    /// The body of the slot at `executing.position` begins, `lateness` nanoseconds after the
    /// instant the run meant to wake.
    private mutating func beginBody(lateness: Int64, now: LoopNow) -> Step {
        var scheduled: ScheduledInstant?
        if let position = current.position, case .slot(let slot) = position.basis { scheduled = slot }
        let iteration = IterationRecord(
            started: now,
            began: now.elapsed,
            lateness: lateness,
            iteration: currentLoop,
            scheduled: scheduled
        )
        current.phase = .body(iteration)
        statistics.lastStart = now.wall
        return Step(
            action: .runBody(yieldFirst: !current.sleptSinceBody),
            began: iteration,
            traces: current.tracesIterations
        )
    }

    // MARK: Health

    /// Whether the executing run is stuck at `now`: a body (or its retries) running longer than
    /// `stallTimeout`, or a sleep whose deadline passed more than `tolerance` ago (the wake never
    /// came, or the executor never ran the woken task). Durations in nanoseconds.
    func health(now: LoopNow, stallTimeout: Int64?, tolerance: Int64) -> LoopHealth {
        guard isRunning else {
            if failed, let error = statistics.lastError { return .failed(String(describing: error)) }
            return .healthy
        }
        // Retrying the store with back-off is what the loop should do while it is down.
        if current.waitingForStore { return .healthy }
        switch current.phase {
        case .starting, .beforeLoop, .afterLoop:
            return .healthy
        case .body(let iteration), .retrying(let iteration):
            guard let stallTimeout, let iteration else { return .healthy }
            let running = now.elapsed.subtractingClamped(iteration.began)
            guard running > stallTimeout else { return .healthy }
            let activity: LoopActivity = current.phase.isRetrying ? .retrying : .runningBody
            return .stalled(activity, for: .nanoseconds(running))
        case .sleeping(let pending):
            let reached = pending.clock == .realtime ? now.wall : now.elapsed
            let overdue = reached.subtractingClamped(pending.deadline)
            return overdue > tolerance ? .overdue(by: .nanoseconds(overdue)) : .healthy
        }
    }

    /// What the executing run does, for the registry.
    var activity: LoopActivity {
        guard isRunning else { return .idle }
        if current.waitingForStore { return .waitingForStore }
        switch current.phase {
        case .starting: return .starting
        case .beforeLoop: return .beforeLoop
        case .sleeping: return .sleeping
        case .retrying: return .retrying
        case .body: return .runningBody
        case .afterLoop: return .afterLoop
        }
    }

    /// Drops rejections already reported, so a schedule that repeats one is reported once.
    private mutating func newRejections(_ rejections: [RejectedSlot]?) -> [RejectedSlot]? {
        guard let rejections else { return nil }
        var fresh: [RejectedSlot] = []
        var last = customizations?.lastRejected
        for rejection in rejections where rejection.instant != last {
            last = rejection.instant
            fresh.append(rejection)
        }
        if !fresh.isEmpty {
            customizations = Customizations(customizations, changing: { $0.lastRejected = last })
        }
        return fresh.isEmpty ? nil : fresh
    }
}
