import Foundation

/// Everything about a ``Loop`` that changes, kept behind the loop's mutex. Transitions are
/// methods that return what the caller must do once the lock is released (resume, cancel,
/// notify the engine), so no task is resumed and no engine is called while the lock is held.
struct LoopState {
    typealias Hook = @Sendable (Loop) async throws -> Void
    typealias ErrorHook = @Sendable (Loop, any Error) async -> Void

    /// One accepted `start()`/`run()`: at most one executes at a time; a run accepted while a
    /// cancelled one finishes waits for it.
    struct Run {
        let id: UInt64
        /// Finished when this run has ended; the run accepted after it awaits this.
        let completion = RunCompletion()
        var stopRequested = false
        var cancelRequested = false
        /// Cancels the run's task (the one `start()` returned, or the one `run()` awaits).
        var cancelTask: (@Sendable () -> Void)?
    }

    /// When the next iteration is due: on the interval clock, or on the wall clock.
    enum Instant: Equatable {
        case elapsed(Int64)
        case wall(Date)
    }

    // MARK: Configuration

    var schedule: Schedule
    /// Bumped by every `changeInterval`/`changeSchedule`, so a run notices the change.
    var scheduleVersion: UInt64 = 0
    /// `seconds`, `minutes`, `hours` as given, for relative schedules.
    var relativeComponents: (seconds: Double, minutes: Double, hours: Double)?
    let count: Int?
    let reconnect: Bool
    /// The policy the user chose; nil means the default of the schedule's kind.
    let missedTicksChoice: MissedTickPolicy?
    var errorFilter = ErrorFilter.defaults
    var beforeLoop: Hook?
    var afterLoop: Hook?
    var onError: ErrorHook?
    /// Returns a value in `0...upper`; replaceable so tests can pin the back-off.
    var jitter: @Sendable (Double) -> Double = { Double.random(in: 0...$0) }

    // MARK: Lifecycle

    private var nextRunID: UInt64 = 1
    /// The run whose code is executing (from `beforeLoop` until `afterLoop` returned).
    private(set) var executing: Run?
    /// Accepted runs waiting for the executing one to finish (only after `cancel()`).
    private(set) var queued: [Run] = []
    /// The Task of the most recently accepted run: the public `task`.
    private(set) var task: Task<Void, Never>?
    /// Completion of the most recently accepted run, which the next accepted run awaits.
    private var latestCompletion: RunCompletion?

    var currentLoop = 0
    var failed = false
    var nextInstant: Instant?
    /// The slot of the iteration that ran last (or is running), which a schedule change
    /// counts from; nil before the run's first iteration.
    var lastSlot: Instant?
    /// The last instant the schedule gave that was not after the last scheduled one (see
    /// `Schedule.validSlot(after:)`), so that the run logs each such instant once.
    private(set) var rejectedInstant: Date?

    init(schedule: Schedule, count: Int?, reconnect: Bool, missedTicks: MissedTickPolicy?) {
        self.schedule = schedule
        self.count = count
        self.reconnect = reconnect
        self.missedTicksChoice = missedTicks
    }

    var missedTicks: MissedTickPolicy {
        missedTicksChoice ?? (schedule.isWallClock ? .skip : .delay)
    }

    var isRunning: Bool { executing != nil || !queued.isEmpty }

    var isBeingCancelled: Bool { executing?.cancelRequested ?? false }

    /// The latest accepted run, which `start()` must find cancelled (or absent) to accept.
    private var latestRun: Run? { queued.last ?? executing }

    // MARK: Transitions

    struct Admission {
        let id: UInt64
        /// The loop was idle: the engine is told it became active, the run begins at once.
        let activates: Bool
        /// The run accepted just before this one, which this one awaits before it begins.
        let predecessor: RunCompletion?
        /// Finished by this run when it has ended.
        let completion: RunCompletion
        /// When `start()`/`run()` was called: where the run's grid begins.
        let anchor: RunAnchor
    }

    /// `start()` / `run()`: accepted when no run is active, or every active run is being
    /// cancelled (then the new run begins once they have finished).
    /// `stopRequested` is asked only once the run is accepted: true admits it already stopped.
    mutating func admitRun(at anchor: RunAnchor, stopped stopRequested: () -> Bool) throws -> Admission {
        if let latest = latestRun, !latest.cancelRequested {
            throw LoopError(
                .alreadyRunning,
                "the loop is already running; call stop() or cancel() first, or restart()"
            )
        }
        let id = nextRunID
        nextRunID += 1
        let activates = !isRunning
        let run = Run(id: id, stopRequested: stopRequested())
        if activates {
            begin(run)
        } else {
            queued.append(run)
        }
        // An idle loop's last run has finished already: nothing to await.
        let predecessor = activates ? nil : latestCompletion
        latestCompletion = run.completion
        return Admission(id: id, activates: activates, predecessor: predecessor, completion: run.completion, anchor: anchor)
    }

    /// Records how to cancel run `id`, and `publicTask` as the loop's `task` (nil for `run()`,
    /// which leaves `task` alone). Returns true when the run was cancelled before its task
    /// existed, so the caller cancels the task now.
    mutating func attach(
        publicTask: Task<Void, Never>?,
        cancel: @escaping @Sendable () -> Void,
        to id: UInt64
    ) -> Bool {
        if let publicTask { task = publicTask }
        if executing?.id == id {
            executing?.cancelTask = cancel
            return executing?.cancelRequested ?? false
        }
        if let index = queued.firstIndex(where: { $0.id == id }) {
            queued[index].cancelTask = cancel
            return queued[index].cancelRequested
        }
        return false
    }

    /// A queued run's predecessor finished: it starts executing now.
    mutating func beginQueuedRun(_ id: UInt64) {
        guard executing == nil, let index = queued.firstIndex(where: { $0.id == id }) else { return }
        begin(queued.remove(at: index))
    }

    private mutating func begin(_ run: Run) {
        executing = run
        failed = false
        currentLoop = 0
        nextInstant = nil
        lastSlot = nil
        rejectedInstant = nil
    }

    /// `changeInterval` / `changeSchedule`: the new schedule, and the next instant it gives the
    /// executing run, so that `nextIteration` is right as soon as the change returns: for an
    /// interval, the last scheduled slot plus the new interval (now when that has passed); for a
    /// wall-clock schedule, its next slot after now. `intervalNow` and `wallNow` are the
    /// engine's clocks read just before.
    mutating func replaceSchedule(with newSchedule: Schedule, intervalNow: Int64, wallNow: Int64) {
        schedule = newSchedule
        scheduleVersion &+= 1
        guard executing != nil, let lastSlot else { return }
        if let interval = newSchedule.interval {
            let last: Int64
            switch lastSlot {
            case .elapsed(let elapsed): last = elapsed
            case .wall(let date): last = intervalNow - (wallNow - date.nanosecondsSince1970)
            }
            nextInstant = .elapsed(max(last.addingClamped(interval.nanoseconds), intervalNow))
        } else {
            nextInstant = newSchedule.nextFire(after: Date(nanosecondsSince1970: wallNow)).map(Instant.wall)
        }
    }

    /// `stop()`: every active run finishes its iteration and exits. Returns whether anything
    /// was running (then the caller wakes a sleeping run).
    mutating func requestStop() -> Bool {
        guard isRunning else { return false }
        executing?.stopRequested = true
        for index in queued.indices { queued[index].stopRequested = true }
        return true
    }

    /// `cancel()`: marks every active run cancelled and returns how to cancel their tasks.
    mutating func requestCancel() -> [@Sendable () -> Void] {
        var cancellations: [@Sendable () -> Void] = []
        if executing != nil {
            executing?.cancelRequested = true
            if let cancel = executing?.cancelTask { cancellations.append(cancel) }
        }
        for index in queued.indices {
            queued[index].cancelRequested = true
            if let cancel = queued[index].cancelTask { cancellations.append(cancel) }
        }
        return cancellations
    }

    /// The executing run saw its task cancelled by someone other than `cancel()` (the caller
    /// of `run()`, or `task.cancel()`): it is being cancelled all the same.
    mutating func markCancelled(_ id: UInt64) {
        if executing?.id == id { executing?.cancelRequested = true }
    }

    /// The run rejected `instant` from its schedule: returns whether it is a new one, to be logged.
    mutating func noteRejectedInstant(_ instant: Date) -> Bool {
        guard rejectedInstant != instant else { return false }
        rejectedInstant = instant
        return true
    }

    func isStopRequested(_ id: UInt64) -> Bool {
        executing?.id == id && executing?.stopRequested == true
    }

    func isCancelRequested(_ id: UInt64) -> Bool {
        executing?.id == id && executing?.cancelRequested == true
    }

    /// Run `id` returned from `afterLoop`. Returns true when the loop is now idle (the caller
    /// tells the engine).
    mutating func finishRun(_ id: UInt64) -> Bool {
        guard executing?.id == id else { return false }
        executing = nil
        nextInstant = nil
        return queued.isEmpty
    }
}
