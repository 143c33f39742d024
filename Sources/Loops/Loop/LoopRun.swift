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
        var anchor = admission.anchor
        if let predecessor = admission.predecessor {
            await predecessor.wait()
            // A run queued behind a cancelled one cannot begin before it has finished.
            anchor = RunAnchor(now: clock)
        }
        var outcome = RunOutcome.finished
        await clock.engine.participate {
            outcome = await self.runToCompletion(admission.id, anchor: anchor)
        }
        switch state.withLock({ $0.runEnded(admission.id) }) {
        case .none:
            break
        case .deactivateEngine:
            clock.engine.loopDidDeactivate()
        }
        admission.completion.finish()
        return outcome
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
        switch state.withLock({ $0.iterationsEnded(id, ending) }) {
        case .finished:
            outcome = .finished
        case .cancelled:
            outcome = .cancelled
        case .failed(let error, let onError):
            await reportUnhandled(error, to: onError)
            outcome = .failed(error)
        }
        await runAfterLoop(state.withLock { $0.afterLoopBegins(id) })
        return outcome
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
        switch state.withLock({ $0.runBegins(id) }) {
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
        var step = state.withLock { $0.iterationsBegin(id, anchor: anchor, now: LoopNow(clock)) }
        while true {
            report(step.rejected)
            switch step.action {
            case .end:
                return
            case .sleep(let deadline, let engineClock):
                let reason = try await engine.sleep(until: deadline, on: engineClock, waker: waker)
                step = state.withLock { $0.woke(id, reason: reason, now: LoopNow(clock)) }
            case .runBody(let yieldFirst):
                if yieldFirst { await Task.yield() }
                try await runBody(id)
                step = state.withLock { $0.bodySucceeded(id, now: LoopNow(clock)) }
            }
        }
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
                let now = LoopNow(clock)
                switch state.withLock({ $0.bodyThrew(id, error: error, now: now) }) {
                case .rethrow:
                    throw error
                case .retry(let deadline, let engineClock, let delay):
                    logger.debug(
                        "retrying the iteration after a handled error",
                        metadata: ["error": "\(error)", "delay_seconds": "\(Double(delay) / 1e9)"]
                    )
                    _ = try await clock.engine.sleep(until: deadline, on: engineClock, waker: nil)
                    state.withLock { $0.retryDue(id) }
                }
            }
        }
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
