import Foundation
import Logging
import Tracing

/// How a run ended.
enum RunOutcome: Sendable {
    /// By `stop()`, by `count`, or because the schedule has no more instants.
    case finished
    /// By `cancel()` or by cancellation of its task.
    case cancelled
    /// By an unhandled error (after `onError`).
    case failed(any Error)
}

extension Loop {
    /// Executes a run from `beforeLoop` to `afterLoop`, in the run's own task: reports each
    /// event to the state machine and performs the action it returns, outside the lock. `named`
    /// is the run's id, or nil for the run admitted while the loop was idle (see
    /// ``LoopStateMachine/beginning(of:)``). Inlined into the task's closure: one frame fewer
    /// under a sleeping loop.
    @inline(__always)
    func execute(_ named: UInt64?) async -> RunOutcome {
        // Only what the end of the run needs stays in this frame, which lives as long as the run.
        guard let (id, anchor) = await begin(named) else { return .finished }
        let outcome: RunOutcome
        if clock.engine.needsParticipation {
            outcome = await runParticipating(id, anchor: anchor)
        } else {
            outcome = await runCancellably(id, anchor: anchor)
        }
        runEnded(id)
        return outcome
    }

    /// The run under one cancellation handler instead of one per sleep: a cancellation ends
    /// the sleep in progress (or the next) through the waker, and the run checks for
    /// cancellation after every sleep that was interrupted.
    nonisolated(nonsending) private func runCancellably(_ id: UInt64, anchor: RunAnchor) async -> RunOutcome {
        await withTaskCancellationHandler {
            await runToCompletion(id, anchor: anchor)
        } onCancel: { [state] in
            state.waker.wake()
        }
    }

    /// Which run the task executes, and where its grid begins: at its admission, or, for a run
    /// queued behind a cancelled one (which it cannot begin before), when that one has
    /// finished. Out of line: what it needs to find out is not kept in `execute`'s frame, which
    /// lives as long as the run (kept there, it cost a sleeping loop a second 1-KB slab of its
    /// task's allocator).
    @inline(never)
    nonisolated(nonsending) private func begin(_ named: UInt64?) async -> (UInt64, RunAnchor)? {
        guard let (id, beginning) = state.withLock({ $0.beginning(of: named) }) else {
            assertionFailure("a task of a run admitted while idle found no run in .starting")
            return nil
        }
        switch beginning {
        case .at(let admitted):
            return (id, admitted)
        case .after(let predecessor):
            await predecessor.wait()
            return (id, RunAnchor(now: clock))
        case .now:
            return (id, RunAnchor(now: clock))
        }
    }

    /// The run as a participant of virtual time.
    @inline(never)
    nonisolated(nonsending) private func runParticipating(_ id: UInt64, anchor: RunAnchor) async -> RunOutcome {
        var outcome = RunOutcome.finished
        await clock.engine.participate {
            outcome = await self.runToCompletion(id, anchor: anchor)
        }
        return outcome
    }

    @inline(never)
    private func runEnded(_ id: UInt64) {
        switch state.withLock({ $0.runEnded(id) }) {
        case .none:
            break
        case .deactivateEngine:
            clock.engine.loopDidDeactivate()
            LoopRegistry.shared.runsEnded(self)
        case .handOver(let completion):
            completion.finish()
        }
    }

    /// The iterations, then what ends the run. Inlined into its two callers' closures: one
    /// async frame fewer under a sleeping loop.
    @inline(__always)
    nonisolated(nonsending) private func runToCompletion(_ id: UInt64, anchor: RunAnchor) async -> RunOutcome {
        let ending: LoopStateMachine.Ending
        do {
            // The prelude returns before the iterations begin: its frame and theirs are never
            // stacked, so the deepest point of a run is the deeper of the two, not their sum.
            if let anchor = try await runPrelude(id, anchor: anchor) {
                try await runIterations(id, anchor: anchor)
            }
            ending = .finished
        } catch {
            ending = .threw(error, taskCancelled: Task.isCancelled)
        }
        return await runEnding(id, ending)
    }

    /// After the iterations: `onError` for an unhandled error, then `afterLoop`.
    @inline(never)
    nonisolated(nonsending) private func runEnding(_ id: UInt64, _ ending: LoopStateMachine.Ending) async -> RunOutcome {
        let outcome: RunOutcome
        switch iterationsEnded(id, ending) {
        case .finished:
            outcome = .finished
        case .cancelled:
            outcome = .cancelled
        case .failed(let error, let onError):
            await reportUnhandled(error, to: onError, keepsSchedule: false)
            outcome = .failed(error)
        }
        await runAfterLoop(afterLoopBegins(id))
        return outcome
    }

    @inline(never)
    private func iterationsEnded(_ id: UInt64, _ ending: LoopStateMachine.Ending) -> LoopStateMachine.EndingAction {
        // A body cut short by cancellation reported no end of its own.
        instruments?.iterationAbandoned()
        return state.withLock { $0.iterationsEnded(id, ending) }
    }

    @inline(never)
    private func afterLoopBegins(_ id: UInt64) -> LoopStateMachine.Hook? {
        state.withLock { $0.afterLoopBegins(id) }
    }

    /// `onError`, or the default: one `.error` log line, so a loop never dies silently.
    @inline(never)
    nonisolated(nonsending) private func reportUnhandled(_ error: any Error, to handler: LoopStateMachine.ErrorHook?, keepsSchedule: Bool) async {
        guard let handler else {
            logUnhandled(error, keepsSchedule: keepsSchedule)
            return
        }
        // A task of its own, so that a cancellation of the run's task does not reach the handler.
        await makeTask { await handler(self, error) }.value
    }

    // The log lines of the async functions around them are built in synchronous functions of
    // their own: on the thread's stack, not in the run's task-allocated frames, which keep
    // the largest size they ever reached for the task's whole life.

    @inline(never)
    private func logUnhandled(_ error: any Error, keepsSchedule: Bool) {
        var metadata = iterationMetadata()
        metadata["error"] = "\(error)"
        metadata["error_type"] = "\(type(of: error))"
        logger.error(
            keepsSchedule
                ? "iteration failed with an unhandled error; the loop keeps its schedule"
                : "loop ended by an unhandled error",
            metadata: metadata
        )
    }

    /// Runs `afterLoop` in a task of its own, so that a cancellation of the run's task does not
    /// reach it: `afterLoop` must be able to flush work after `cancel()`.
    @inline(never)
    nonisolated(nonsending) private func runAfterLoop(_ hook: LoopStateMachine.Hook?) async {
        guard let hook else { return }
        let failure: (any Error)? = await makeTask {
            do {
                try await hook(self)
                return nil
            } catch {
                return error
            }
        }.value
        if let failure { logAfterLoopFailure(failure) }
    }

    @inline(never)
    private func logAfterLoopFailure(_ failure: any Error) {
        var metadata = iterationMetadata()
        metadata["error"] = "\(failure)"
        logger.error("afterLoop threw an error", metadata: metadata)
    }

    /// The iterations, after ``runPrelude(_:anchor:)``, until the state machine says the run
    /// ends. The grid is anchored where the user expects it: at the `start()` call (not when the
    /// run's task first got a thread), or, with a `beforeLoop`, at the instant it returned.
    ///
    /// Every wake (deadline, `stop()`, a schedule change, a wall-clock step) goes back to the
    /// state machine, which re-decides from the state as it is then: no event is lost between
    /// deciding and sleeping.
    nonisolated(nonsending) private func runIterations(_ id: UInt64, anchor: RunAnchor) async throws {
        // The engine is not kept in this frame (an existential: 40 bytes for as long as the loop
        // sleeps); each sleep reads it from `clock`.
        var action = iterationsBegin(id, anchor: anchor)
        while true {
            switch action {
            case .end:
                return
            case .sleep(let deadline, let engineClock):
                let reason = try await sleep(until: deadline, on: engineClock)
                action = woke(id, reason: reason)
            case .runBody(let yieldFirst):
                if yieldFirst { await Task.yield() }
                // A loop with no span, timeout or claim calls its body from this frame (a
                // frame between would cost its allocation every tick); everything else, the
                // failure path included, is out of line, so that this frame stays small.
                if callsBodyDirectly {
                    do {
                        try await body(self)
                        action = bodySucceeded(id)
                    } catch {
                        action = try await runIteration(id, after: error)
                    }
                } else {
                    action = try await iterateInFull(id)
                }
            }
        }
    }

    /// An iteration with a span, a timeout or a run store around its body.
    @inline(never)
    nonisolated(nonsending) private func iterateInFull(_ id: UInt64) async throws -> LoopStateMachine.IterationAction {
        if recordsRuns, let store {
            return try await runClaimedIteration(id, store: store)
        }
        return try await runIteration(id)
    }

    /// `beforeLoop` and the run store's catch-up; returns the grid's anchor, or nil when the
    /// run ends without iterations. Out of line, like ``runEnding(_:_:)``: inlined, its frame
    /// would become part of the frame the run sleeps in.
    @inline(never)
    nonisolated(nonsending) private func runPrelude(_ id: UInt64, anchor: RunAnchor) async throws -> RunAnchor? {
        var anchor = anchor
        switch runBegins(id) {
        case .cancelled:
            throw CancellationError()
        case .runBeforeLoop(let beforeLoop):
            try Task.checkCancellation()
            if let beforeLoop {
                try await beforeLoop(self)
                anchor = RunAnchor(now: clock)
            }
        }
        try Task.checkCancellation()
        if let store, try await !catchUp(id, store: store, before: anchor.wall) { return nil }
        return anchor
    }

    /// The loop's sleep until its next wake. Inlined into `runIterations`, so that a sleeping
    /// loop's task holds no engine frames between it and the timer's.
    @inline(__always)
    nonisolated(nonsending) private func sleep(
        until deadline: Int64,
        on engineClock: EngineClock
    ) async throws -> WakeReason {
        switch try clock.engine.route(until: deadline, on: engineClock) {
        case .reached:
            try Task.checkCancellation()
            return .deadlineReached
        case .timer(let timer):
            // `runCancellably`'s cancellation handler wakes `waker`: a cancellation before or
            // during the sleep ends it as `.interrupted`, so only that reason needs the check
            // (~100 instructions: the task's lookup in thread-local storage). A cancellation
            // after the timer released the sleeper is one the body could race anyway; its wake
            // stays pending and ends the next sleep at once.
            let reason = try await timer.sleep(until: deadline, interruptedBy: waker)
            if reason == .interrupted { try Task.checkCancellation() }
            return reason
        case .engine:
            return try await clock.engine.sleep(until: deadline, on: engineClock, waker: waker)
        }
    }

    // The transitions and what they report are kept out of line: inlined into the async
    // functions above, their temporaries would become part of the run's async frames, which
    // live as long as the loop sleeps (2.6 KB per frame instead of a few hundred bytes).

    @inline(never)
    private func runBegins(_ id: UInt64) -> LoopStateMachine.BeginAction {
        state.withLock { $0.runBegins(id) }
    }

    @inline(never)
    private func iterationsBegin(_ id: UInt64, anchor: RunAnchor) -> LoopStateMachine.IterationAction {
        // The logger's level is read once per run, not twice a tick: each read copies the
        // handler out of the logger's storage under an exclusivity check (~200 instructions).
        let traces = injectedLogger.logLevel <= .trace
        return perform(state.withLock { $0.iterationsBegin(id, anchor: anchor, traces: traces, now: LoopNow(clock)) })
    }

    @inline(never)
    private func woke(_ id: UInt64, reason: WakeReason) -> LoopStateMachine.IterationAction {
        perform(state.withLock { $0.woke(id, reason: reason, now: LoopNow(clock)) })
    }

    @inline(never)
    private func bodySucceeded(_ id: UInt64) -> LoopStateMachine.IterationAction {
        perform(state.withLock { $0.bodySucceeded(id, now: LoopNow(clock)) })
    }

    @inline(never)
    private func failureReported(_ id: UInt64) -> LoopStateMachine.IterationAction {
        perform(state.withLock { $0.failureReported(id, now: LoopNow(clock)) })
    }

    /// Reports what a step says happened (outside the lock): misbehaving schedule answers,
    /// missed ticks, the end of an iteration and the beginning of the next. Inlined, with the
    /// reporting out of line: most steps have nothing to report.
    @inline(__always)
    func perform(_ step: LoopStateMachine.Step) -> LoopStateMachine.IterationAction {
        if step.rejectedSlots != nil || step.missedTicks > 0 || step.traces || instruments != nil {
            report(step)
        }
        return step.action
    }

    @inline(never)
    private func report(_ step: LoopStateMachine.Step) {
        if let rejected = step.rejectedSlots { report(rejected) }
        if step.missedTicks > 0 {
            instruments?.missed(step.missedTicks)
            logger.debug(
                "slots passed without an iteration of their own; the missed-tick policy resolved them",
                metadata: ["loop.missed_ticks": "\(step.missedTicks)"]
            )
        }
        if let instruments {
            if let duration = step.finishedDuration { instruments.iterationSucceeded(duration: duration) }
            if let began = step.began { instruments.iterationBegan(began, scheduledAt: began.scheduled?.date(on: clock)) }
        }
        if step.traces {
            if let duration = step.finishedDuration {
                logger.trace("iteration finished", metadata: ["loop.duration_ms": "\(Double(duration) / 1e6)"])
            }
            if let began = step.began {
                logger.trace("iteration begins", metadata: metadata(of: began))
            }
        }
    }

    @inline(never)
    private func retryDue(_ id: UInt64) {
        state.withLock { $0.retryDue(id, now: LoopNow(clock)) }
    }

    @inline(never)
    private func bodyThrew(_ id: UInt64, error: any Error) -> LoopStateMachine.BodyFailureAction {
        let (action, record, duration) = state.withLock { machine in
            let action = machine.bodyThrew(id, error: error, now: LoopNow(clock))
            return (action, machine.currentIteration, machine.statistics.lastDuration)
        }
        switch action {
        case .cancelled:
            instruments?.iterationAbandoned()
        case .rethrow, .reportAndContinue:
            instruments?.attemptFailed(error, duration: duration, retried: false)
        case .retry(_, _, let delay):
            instruments?.attemptFailed(error, duration: duration, retried: true)
            var metadata = record.map(metadata(of:)) ?? [:]
            metadata["error"] = "\(error)"
            metadata["delay_seconds"] = "\(Double(delay) / 1e9)"
            if let duration { metadata["loop.duration_ms"] = "\(Double(duration) / 1e6)" }
            logger.debug("retrying the iteration after a handled error", metadata: metadata)
        }
        return action
    }

    /// One iteration: the body, retried after a back-off while it throws a handled error
    /// (`stop()` does not interrupt the retries, as in disnake); returns what the run does next.
    /// With `firstFailure`, the body's first attempt already threw it. Out of line: inlined into
    /// `runIterations`, its frame would become part of the frame the run sleeps in.
    @inline(never)
    nonisolated(nonsending) func runIteration(_ id: UInt64, after firstFailure: (any Error)? = nil) async throws -> LoopStateMachine.IterationAction {
        var failure = firstFailure
        while true {
            if let error = failure {
                failure = nil
                if Task.isCancelled { throw error }
                if let action = try await recover(id, from: error) { return action }
            }
            do {
                // A body with no span, timeout or claim around it comes here only for its
                // retries; its first attempt is called from `runIterations`.
                if callsBodyDirectly {
                    try await body(self)
                } else {
                    try await attempt()
                }
                return bodySucceeded(id)
            } catch {
                failure = error
            }
        }
    }

    /// After a body attempt threw: nil when the back-off of a retry has passed (the body runs
    /// again), else what the run does next; throws the error when it ends the run. Its own
    /// async function, so that the rare path adds nothing to the frame every tick runs in.
    nonisolated(nonsending) private func recover(_ id: UInt64, from error: any Error) async throws -> LoopStateMachine.IterationAction? {
        switch bodyThrew(id, error: error) {
        case .rethrow, .cancelled:
            throw error
        case .retry(let deadline, let engineClock, _):
            _ = try await clock.engine.sleep(until: deadline, on: engineClock, waker: nil)
            retryDue(id)
            return nil
        case .reportAndContinue(let onError):
            await reportUnhandled(error, to: onError, keepsSchedule: true)
            return failureReported(id)
        }
    }

    /// One attempt of the body: inside its iteration's span context when tracing, under the
    /// loop's timeout and its run store's claim when it has them.
    nonisolated(nonsending) private func attempt() async throws {
        if let context = instruments?.iterationContext {
            try await InstrumentationContext.withValue(context) { try await self.attemptUnderWatches() }
        } else {
            try await attemptUnderWatches()
        }
    }

    /// How a watched attempt ended.
    private enum AttemptEnding: Sendable {
        case bodyReturned
        case timedOut
        case claimLost
    }

    nonisolated(nonsending) private func attemptUnderWatches() async throws {
        let claim = store == nil ? nil : state.withLock { $0.claim }
        guard timeout != nil || claim != nil else {
            try await body(self)
            return
        }
        let engine = clock.engine
        let intervalClock = clock.intervalClock
        let deadline = timeout.map { engine.now(intervalClock).addingClamped($0) }
        let store = self.store
        // The body and its watches race; whichever ends first cancels the others, and the group
        // waits for all, so a cancelled body has finished (cooperatively) before the error is
        // reported: its iterations never overlap, and a slot whose claim was lost is not run
        // here any more when another process takes it over. For virtual time the watches are
        // one more activity of the loop while the group exists: time moves on only when the
        // body and the watches all sleep, and not between a watch's wake and the body's
        // cancellation.
        // The loss watch does not sleep on the engine (a store's lease is real time), so only
        // the timeout's watch is an activity virtual time waits for.
        if deadline != nil { engine.loopDidActivate() }
        defer { if deadline != nil { engine.loopDidDeactivate() } }
        let ending = try await withThrowingTaskGroup(of: AttemptEnding.self, returning: AttemptEnding.self) { group in
            if let deadline {
                group.addTask {
                    _ = try await engine.sleep(until: deadline, on: intervalClock, waker: nil)
                    return .timedOut
                }
            }
            if let store, let claim {
                group.addTask {
                    await store.waitForLoss(of: claim)
                    try Task.checkCancellation()
                    return .claimLost
                }
            }
            group.addTask {
                try await self.body(self)
                return .bodyReturned
            }
            defer { group.cancelAll() }
            return try await group.next() ?? .bodyReturned
        }
        switch ending {
        case .bodyReturned:
            return
        case .timedOut:
            throw LoopError(
                .timedOut,
                "iteration \(currentLoop) of loop '\(name)' ran past its timeout of \(Duration.nanoseconds(timeout ?? 0).secondsDescription) and was cancelled"
            )
        case .claimLost:
            throw LoopError(
                .claimLost,
                "the claim of loop '\(name)' on its slot \(claim.map { $0.scheduledAt.iso8601 } ?? "?") (fencing token \(claim.map { String($0.fencingToken) } ?? "?")) was lost before the body finished; the body was cancelled"
            )
        }
    }

    /// The metadata of the iteration in progress, with the duration of its failed attempt, for
    /// the rare log lines (errors).
    private func iterationMetadata() -> Logger.Metadata {
        let (record, duration, currentLoop) = state.withLock { ($0.currentIteration, $0.statistics.lastDuration, $0.currentLoop) }
        guard let record else { return ["loop.iteration": "\(currentLoop)"] }
        var metadata = metadata(of: record)
        if let duration { metadata["loop.duration_ms"] = "\(Double(duration) / 1e6)" }
        return metadata
    }

    private func metadata(of record: LoopStateMachine.IterationRecord) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["loop.iteration": "\(record.iteration)"]
        if let scheduled = record.scheduled {
            metadata["loop.scheduled_at"] = "\(scheduled.date(on: clock).iso8601)"
        }
        metadata["loop.lateness_ms"] = "\(Double(record.lateness) / 1e6)"
        return metadata
    }

    /// Reports instants a misbehaving schedule gave that were not after the last scheduled one,
    /// at `.error` (a documented exception to logging at `.debug` at most), once per instant.
    private func report(_ rejected: [RejectedSlot]) {
        for rejection in rejected {
            logger.error(
                "the schedule gave an instant that is not after the last scheduled one; the loop skips it",
                metadata: [
                    "schedule": "\(schedule)",
                    "instant": "\(rejection.instant.iso8601)",
                    "after": "\(rejection.floor.iso8601)",
                    "next": "\(rejection.replacement?.iso8601 ?? "none: the schedule is treated as ended")",
                ]
            )
        }
    }
}
