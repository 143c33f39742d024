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

/// Where a run stands on its schedule: the instant the last iteration was scheduled for, or
/// the start when no iteration was scheduled yet, with the schedule version it came from.
struct SchedulePosition {
    enum Basis {
        /// The run's anchor `t0`, on the wall clock and on the interval clock.
        case start(RunAnchor)
        case slot(LoopState.Instant)
    }

    var basis: Basis
    var version: UInt64
}

extension Loop {
    /// Executes run `admission.id` from `beforeLoop` to `afterLoop`, in the run's own task.
    func execute(_ admission: LoopState.Admission) async -> RunOutcome {
        let id = admission.id
        var anchor = admission.anchor
        if let predecessor = admission.predecessor {
            await predecessor.wait()
            state.withLock { $0.beginQueuedRun(id) }
            // A run queued behind a cancelled one cannot begin before it has finished.
            anchor = RunAnchor(now: clock)
        }
        var outcome = RunOutcome.finished
        await clock.engine.participate {
            outcome = await self.runToCompletion(id, anchor: anchor)
        }
        let becameIdle = state.withLock { $0.finishRun(id) }
        if becameIdle { clock.engine.loopDidDeactivate() }
        admission.completion.finish()
        return outcome
    }

    private func runToCompletion(_ id: UInt64, anchor: RunAnchor) async -> RunOutcome {
        let outcome: RunOutcome
        do {
            try await runIterations(id, anchor: anchor)
            outcome = .finished
        } catch {
            if Task.isCancelled || state.withLock({ $0.isCancelRequested(id) }) {
                // Whatever the body threw while being cancelled is the cancellation itself.
                state.withLock { $0.markCancelled(id) }
                outcome = .cancelled
            } else {
                state.withLock { $0.failed = true }
                await reportUnhandled(error)
                outcome = .failed(error)
            }
        }
        await runAfterLoop()
        return outcome
    }

    /// `onError`, or the default: one `.error` log line, so a loop never dies silently.
    private func reportUnhandled(_ error: any Error) async {
        let handler = state.withLock { $0.onError }
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
    private func runAfterLoop() async {
        guard let hook = state.withLock({ $0.afterLoop }) else { return }
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

    /// The grid is anchored where the user expects it: at the `start()` call (not when the
    /// run's task first got a thread), or, with a `beforeLoop`, at the instant it returned.
    private func runIterations(_ id: UInt64, anchor: RunAnchor) async throws {
        // A run cancelled before it began (queued behind a cancelled one) skips `beforeLoop`.
        try Task.checkCancellation()
        var anchor = anchor
        if let beforeLoop = state.withLock({ $0.beforeLoop }) {
            try await beforeLoop(self)
            anchor = RunAnchor(now: clock)
        }
        try Task.checkCancellation()

        let startVersion = state.withLock { $0.scheduleVersion }
        var position = SchedulePosition(basis: .start(anchor), version: startVersion)
        var backoff = Backoff()
        while let next = try await waitForNextIteration(after: position, run: id) {
            position = next
            try await runBody(backoff: &backoff)
            let shouldExit = state.withLock { state in
                state.currentLoop += 1
                let countReached = state.count.map { state.currentLoop >= $0 } ?? false
                return countReached || state.isStopRequested(id)
            }
            if shouldExit { return }
        }
    }

    /// The body, retried after a back-off while it throws a handled error (`stop()` does not
    /// interrupt the retries, as in disnake).
    private func runBody(backoff: inout Backoff) async throws {
        while true {
            do {
                try await body(self)
                backoff.reset()
                return
            } catch {
                if Task.isCancelled { throw error }
                let (retry, jitter) = state.withLock { state in
                    (state.reconnect && !(error is CancellationError) && state.errorFilter.handles(error), state.jitter)
                }
                guard retry else { throw error }
                let engine = clock.engine
                let now = engine.now(clock.intervalClock)
                let delay = backoff.delay(now: now, jitter: jitter)
                logger.debug(
                    "retrying the iteration after a handled error",
                    metadata: ["error": "\(error)", "delay_seconds": "\(Double(delay) / 1e9)"]
                )
                _ = try await engine.sleep(until: now.addingClamped(delay), on: clock.intervalClock, waker: nil)
            }
        }
    }

    /// Decides the next iteration's slot, sleeps until it is due and returns the new position;
    /// nil when the run should end (`stop()`, or no more instants in the schedule).
    ///
    /// Every wake-up (deadline, interruption by `stop()`/`changeInterval`, wall-clock step)
    /// re-reads the state and recomputes, so no event can be lost between reading and sleeping.
    private func waitForNextIteration(after position: SchedulePosition, run id: UInt64) async throws -> SchedulePosition? {
        let engine = clock.engine
        var sleptAlready = false
        while true {
            let (schedule, version, policy, stopRequested) = state.withLock {
                ($0.schedule, $0.scheduleVersion, $0.missedTicks, $0.isStopRequested(id))
            }
            if stopRequested { return nil }
            try Task.checkCancellation()

            let decision: IterationDecision
            if let interval = schedule.interval {
                decision = decideRelative(interval: interval.nanoseconds, after: position, version: version, policy: policy)
            } else {
                guard let wallDecision = decideWall(schedule, after: position, version: version, policy: policy) else {
                    return nil
                }
                decision = wallDecision
            }

            switch decision {
            case .runNow(let slot, let next):
                state.withLock {
                    $0.nextInstant = next
                    $0.lastSlot = slot
                }
                if !sleptAlready {
                    // Back-to-back iterations (interval 0, overruns) still let other tasks run.
                    await Task.yield()
                }
                return SchedulePosition(basis: .slot(slot), version: version)

            case .sleep(let deadline, let engineClock, let slot, let nextAfterSlot):
                state.withLock { $0.nextInstant = slot }
                let reason = try await engine.sleep(until: deadline, on: engineClock, waker: waker)
                sleptAlready = true
                guard reason == .deadlineReached else { continue }
                // A wake so late that the following slot has passed too (the machine was
                // suspended, the process stalled) is an overrun: re-decide with the policy. A
                // wake that is merely late keeps the grid, so timer latency never causes drift.
                let missedFollowingSlot = isDue(nextAfterSlot)
                // The schedule may have changed, or stop() come, just before the wake: re-decide then.
                let onSchedule = state.withLock { state -> Bool in
                    guard state.scheduleVersion == version, !state.isStopRequested(id), !missedFollowingSlot else {
                        return false
                    }
                    state.nextInstant = nextAfterSlot
                    state.lastSlot = slot
                    return true
                }
                if onSchedule {
                    return SchedulePosition(basis: .slot(slot), version: version)
                }
            }
        }
    }

    private func isDue(_ instant: LoopState.Instant?) -> Bool {
        switch instant {
        case nil:
            return false
        case .elapsed(let deadline):
            return deadline <= clock.engine.now(clock.intervalClock)
        case .wall(let date):
            return date.nanosecondsSince1970 <= clock.engine.now(.realtime)
        }
    }

    enum IterationDecision {
        /// Due now (first relative iteration, or an overrun resolved by the policy).
        case runNow(slot: LoopState.Instant, next: LoopState.Instant?)
        /// Sleep until `deadline` on `clock`, then run the iteration scheduled for `slot`.
        case sleep(deadline: Int64, clock: EngineClock, slot: LoopState.Instant, nextAfterSlot: LoopState.Instant?)
    }

    private func decideRelative(interval: Int64, after position: SchedulePosition, version: UInt64, policy: MissedTickPolicy) -> IterationDecision {
        let engine = clock.engine
        let now = engine.now(clock.intervalClock)
        let last: Int64
        switch position.basis {
        case .start(let anchor):
            // The first iteration of an interval loop is due at the anchor: at once.
            return .runNow(slot: .elapsed(anchor.elapsed), next: .elapsed(anchor.elapsed.addingClamped(interval)))
        case .slot(.elapsed(let elapsed)):
            last = elapsed
        case .slot(.wall(let date)):
            // Switched from a wall-clock schedule: express its last slot on the interval clock.
            last = now - (engine.now(.realtime) - date.nanosecondsSince1970)
        }
        let next = last.addingClamped(interval)
        if next > now {
            return .sleep(deadline: next, clock: clock.intervalClock, slot: .elapsed(next), nextAfterSlot: .elapsed(next.addingClamped(interval)))
        }
        // Overrun: the slot `next` has passed.
        let slot: Int64
        if interval == 0 || policy.isDelay {
            slot = now
        } else if policy.isBurst {
            slot = next
        } else {
            // .skip: the latest grid point not after now stands for all the missed ones.
            slot = next + (now - next) / interval * interval
        }
        return .runNow(slot: .elapsed(slot), next: .elapsed(slot.addingClamped(interval)))
    }

    private func decideWall(_ schedule: Schedule, after position: SchedulePosition, version: UInt64, policy: MissedTickPolicy) -> IterationDecision? {
        let nowNanoseconds = clock.engine.now(.realtime)
        let now = Date(nanosecondsSince1970: nowNanoseconds)
        let candidate: Date?
        switch position.basis {
        case .start(let anchor) where position.version == version:
            candidate = schedule.nextFire(onOrAfter: anchor.wall)
        case .slot(.wall(let last)) where position.version == version:
            candidate = validSlot(of: schedule, after: last)
        default:
            // A new schedule: its next slot after now.
            candidate = validSlot(of: schedule, after: now)
        }
        guard let candidate else { return nil }
        let deadline = candidate.nanosecondsSince1970
        if deadline > nowNanoseconds {
            let following = validSlot(of: schedule, after: candidate).map(LoopState.Instant.wall)
            return .sleep(deadline: deadline, clock: .realtime, slot: .wall(candidate), nextAfterSlot: following)
        }
        // Overrun or forward clock step: `.burst` runs every missed slot; `.skip` and `.delay`
        // run once now and continue with the next slot after now.
        let slot = policy.isBurst ? candidate : max(candidate, now)
        return .runNow(slot: .wall(slot), next: validSlot(of: schedule, after: slot).map(LoopState.Instant.wall))
    }

    /// The schedule's next instant strictly after `floor`, through ``Schedule/validSlot(after:)``:
    /// an instant that is not after `floor` never runs and never shows in `nextIteration`. The
    /// first rejected instant is logged at `.error` (a documented exception to logging at `.debug`
    /// at most), once per instant, however often the schedule repeats it.
    private func validSlot(of schedule: Schedule, after floor: Date) -> Date? {
        let search = schedule.validSlot(after: floor)
        if let rejected = search.rejected, state.withLock({ $0.noteRejectedInstant(rejected) }) {
            logger.error(
                "the schedule gave an instant that is not after the last scheduled one; the loop skips it",
                metadata: [
                    "schedule": "\(schedule)",
                    "instant": "\(rejected.iso8601)",
                    "after": "\(floor.iso8601)",
                    "next": "\(search.slot?.iso8601 ?? "none: the schedule is treated as ended")",
                ]
            )
        }
        return search.slot
    }
}

/// The instant `t0` a run's grid starts from, read on both clocks at once.
struct RunAnchor: Sendable {
    /// On the loop's interval clock (nanoseconds).
    let elapsed: Int64
    let wall: Date

    init(now clock: LoopClock) {
        let engine = clock.engine
        elapsed = engine.now(clock.intervalClock)
        wall = Date(nanosecondsSince1970: engine.now(.realtime))
    }
}

extension Int64 {
    /// `self + other`, saturating instead of trapping: deadlines far in the future stay far.
    func addingClamped(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        if overflow { return other > 0 ? .max : .min }
        return sum
    }
}
