import Foundation
import Logging

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
    /// Executes run `admission.id` from `beforeLoop` to `afterLoop`, in the run's own task: reports
    /// each event to the state machine and performs the action it returns, outside the lock.
    func execute(_ admission: LoopStateMachine.Admission) async -> RunOutcome {
        let id = admission.id
        var anchor = admission.anchor
        if let predecessor = admission.predecessor {
            await predecessor.wait()
            // A run queued behind a cancelled one cannot begin before it has finished.
            anchor = RunAnchor(now: clock)
        }
        var outcome = RunOutcome.finished
        let engine = clock.engine
        if engine.needsParticipation {
            await engine.participate {
                outcome = await self.runToCompletion(id, anchor: anchor)
            }
        } else {
            outcome = await runToCompletion(id, anchor: anchor)
        }
        runEnded(id, completion: admission.completion)
        return outcome
    }

    @inline(never)
    private func runEnded(_ id: UInt64, completion: RunCompletion) {
        switch state.withLock({ $0.runEnded(id) }) {
        case .none:
            break
        case .deactivateEngine:
            clock.engine.loopDidDeactivate()
        }
        completion.finish()
    }

    private func runToCompletion(_ id: UInt64, anchor: RunAnchor) async -> RunOutcome {
        let ending: LoopStateMachine.Ending
        do {
            try await runIterations(id, anchor: anchor)
            ending = .finished
        } catch {
            ending = .threw(error, taskCancelled: Task.isCancelled)
        }
        let outcome: RunOutcome
        switch iterationsEnded(id, ending) {
        case .finished:
            outcome = .finished
        case .cancelled:
            outcome = .cancelled
        case .failed(let error, let onError):
            await reportUnhandled(error, to: onError)
            outcome = .failed(error)
        }
        await runAfterLoop(afterLoopBegins(id))
        return outcome
    }

    @inline(never)
    private func iterationsEnded(_ id: UInt64, _ ending: LoopStateMachine.Ending) -> LoopStateMachine.EndingAction {
        state.withLock { $0.iterationsEnded(id, ending) }
    }

    @inline(never)
    private func afterLoopBegins(_ id: UInt64) -> LoopStateMachine.Hook? {
        state.withLock { $0.afterLoopBegins(id) }
    }

    /// `onError`, or the default: one `.error` log line, so a loop never dies silently.
    private func reportUnhandled(_ error: any Error, to handler: LoopStateMachine.ErrorHook?) async {
        guard let handler else {
            logger.error(
                "loop ended by an unhandled error",
                metadata: ["error": "\(error)", "error_type": "\(type(of: error))"]
            )
            return
        }
        // A task of its own, so that a cancellation of the run's task does not reach the handler.
        await makeTask { await handler(self, error) }.value
    }

    /// Runs `afterLoop` in a task of its own, so that a cancellation of the run's task does not
    /// reach it: `afterLoop` must be able to flush work after `cancel()`.
    private func runAfterLoop(_ hook: LoopStateMachine.Hook?) async {
        guard let hook else { return }
        let failure: (any Error)? = await makeTask {
            do {
                try await hook(self)
                return nil
            } catch {
                return error
            }
        }.value
        if let failure {
            logger.error("afterLoop threw an error", metadata: ["error": "\(failure)"])
        }
    }

    /// `beforeLoop`, then the iterations until the state machine says the run ends. The grid is
    /// anchored where the user expects it: at the `start()` call (not when the run's task first
    /// got a thread), or, with a `beforeLoop`, at the instant it returned.
    ///
    /// Every wake (deadline, `stop()`, a schedule change, a wall-clock step) goes back to the
    /// state machine, which re-decides from the state as it is then: no event is lost between
    /// deciding and sleeping.
    private func runIterations(_ id: UInt64, anchor: RunAnchor) async throws {
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

        let engine = clock.engine
        var action = iterationsBegin(id, anchor: anchor)
        while true {
            switch action {
            case .end:
                return
            case .sleep(let deadline, let engineClock):
                let reason = try await engine.sleep(until: deadline, on: engineClock, waker: waker)
                action = woke(id, reason: reason)
            case .runBody(let yieldFirst):
                if yieldFirst { await Task.yield() }
                try await runBody(id)
                action = bodySucceeded(id)
            }
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
        perform(state.withLock { $0.iterationsBegin(id, anchor: anchor, now: LoopNow(clock)) })
    }

    @inline(never)
    private func woke(_ id: UInt64, reason: WakeReason) -> LoopStateMachine.IterationAction {
        perform(state.withLock { $0.woke(id, reason: reason, now: LoopNow(clock)) })
    }

    @inline(never)
    private func bodySucceeded(_ id: UInt64) -> LoopStateMachine.IterationAction {
        perform(state.withLock { $0.bodySucceeded(id, now: LoopNow(clock)) })
    }

    private func perform(_ step: LoopStateMachine.Step) -> LoopStateMachine.IterationAction {
        report(step.rejected)
        return step.action
    }

    @inline(never)
    private func retryDue(_ id: UInt64) {
        state.withLock { $0.retryDue(id) }
    }

    @inline(never)
    private func bodyThrew(_ id: UInt64, error: any Error) -> LoopStateMachine.BodyFailureAction {
        let action = state.withLock { $0.bodyThrew(id, error: error, now: LoopNow(clock)) }
        if case .retry(_, _, let delay) = action {
            logger.debug(
                "retrying the iteration after a handled error",
                metadata: ["error": "\(error)", "delay_seconds": "\(Double(delay) / 1e9)"]
            )
        }
        return action
    }

    /// The body, retried after a back-off while it throws a handled error (`stop()` does not
    /// interrupt the retries, as in disnake).
    private func runBody(_ id: UInt64) async throws {
        while true {
            do {
                try await body(self)
                return
            } catch {
                if Task.isCancelled { throw error }
                switch bodyThrew(id, error: error) {
                case .rethrow:
                    throw error
                case .retry(let deadline, let engineClock, _):
                    _ = try await clock.engine.sleep(until: deadline, on: engineClock, waker: nil)
                    retryDue(id)
                }
            }
        }
    }

    /// Reports instants a misbehaving schedule gave that were not after the last scheduled one,
    /// at `.error` (a documented exception to logging at `.debug` at most), once per instant.
    private func report(_ rejected: [RejectedSlot]) {
        guard !rejected.isEmpty else { return }
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
