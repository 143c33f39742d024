import Foundation
import Logging

/// A run of a loop with a ``RunStore``: catch-up at start, and a claim around every body.
extension Loop {
    /// Runs, before the run's own schedule, the slots missed since the last one the store
    /// recorded (``CatchUp``), each under a claim. Returns false when the run ends meanwhile
    /// (`stop()`, `count`).
    nonisolated(nonsending) func catchUp(_ id: UInt64, store: any RunStore, before start: Date) async throws -> Bool {
        let (catchUp, schedule) = state.withLock { ($0.policies.catchUp, $0.decisionSchedule) }
        guard catchUp != .none else { return true }
        guard let record = try await withStoreRetries(id, { try await store.lastRun(of: self.name) }) else { return true }
        let slots = catchUp.slots(of: schedule, after: record.scheduledAt, before: start)
        if !slots.isEmpty {
            logger.debug(
                "catching up on slots missed while the loop was down",
                metadata: [
                    "loop.missed_slots": "\(slots.count)",
                    "loop.last_recorded": "\(record.scheduledAt.iso8601)",
                ]
            )
        }
        for slot in slots {
            let action = perform(state.withLock { $0.slotBegins(id, slot: .wall(slot), now: LoopNow(clock)) })
            guard case .runBody = action else { return false }
            if case .end = try await runClaimedIteration(id, store: store) { return false }
        }
        return true
    }

    /// Claims the slot of the iteration that begins and runs its body under the claim; a slot
    /// the store refuses is skipped. When the store hands over an earlier slot whose claim
    /// lapsed (its process died), that slot's body runs first, then the slot asked for is
    /// claimed again.
    nonisolated(nonsending) func runClaimedIteration(_ id: UInt64, store: any RunStore) async throws -> LoopStateMachine.IterationAction {
        let asked = state.withLock { $0.currentIteration?.scheduled }
        let askedDate = asked?.date(on: clock) ?? Date(nanosecondsSince1970: clock.engine.now(.realtime))
        while true {
            guard let claim = try await claimSlot(askedDate, store: store, id: id) else {
                logger.debug("slot already run elsewhere; skipped", metadata: ["loop.scheduled_at": "\(askedDate.iso8601)"])
                return perform(state.withLock { $0.slotRefused(id, now: LoopNow(clock)) })
            }
            let earlierSlot = claim.scheduledAt < askedDate ? claim.scheduledAt : nil
            state.withLock { $0.slotClaimed(id, claim: claim, earlierSlot: earlierSlot, now: LoopNow(clock)) }
            let action = try await runIteration(id, under: claim, store: store)
            guard earlierSlot != nil else { return action }
            if case .end = action { return action }
            let step = perform(state.withLock { $0.slotBegins(id, slot: asked, now: LoopNow(clock)) })
            guard case .runBody = step else { return step }
        }
    }

    /// The iteration (with its retries) under `claim`; the store learns how it ended.
    nonisolated(nonsending) private func runIteration(_ id: UInt64, under claim: SlotClaim, store: any RunStore) async throws -> LoopStateMachine.IterationAction {
        let action: LoopStateMachine.IterationAction
        do {
            action = try await runIteration(id)
        } catch {
            let outcome: RunRecord.Outcome = error is CancellationError || Task.isCancelled ? .cancelled : .failed("\(error)")
            await complete(claim, outcome: outcome, store: store, id: id)
            throw error
        }
        // The iteration returned: its body succeeded, or failed and the loop keeps its schedule.
        let failure = state.withLock { $0.statistics.lastError }
        await complete(claim, outcome: failure.map { .failed("\($0)") } ?? .succeeded, store: store, id: id)
        return action
    }

    /// Records the end of a claimed slot, retried every quarter second at most while the store
    /// is unreachable: a shared store may hand a slot whose end it never learnt to another
    /// process, so the end is recorded as soon as the store is back. Gives up when the claim was
    /// lost (another process took the slot over), or on `stop()` or cancellation; both go to
    /// `onError` (by default one log line).
    nonisolated(nonsending) private func complete(_ claim: SlotClaim, outcome: RunRecord.Outcome, store: any RunStore, id: UInt64) async {
        defer { state.withLock { $0.claimReleased(id); $0.storeWait(id, waiting: false) } }
        let finishedAt = Date(nanosecondsSince1970: clock.engine.now(.realtime))
        var delay = Self.firstCompletionRetry
        while true {
            do {
                try await store.complete(claim, outcome: outcome, finishedAt: finishedAt)
                return
            } catch {
                let lost = (error as? LoopError)?.code == .claimLost
                if lost || runIsStopping || Task.isCancelled {
                    let reported = lost
                        ? error
                        : LoopError(
                            .storeFailed,
                            "loop '\(name)' could not record the end of its slot \(claim.scheduledAt.iso8601) (fencing token \(claim.fencingToken)): \(error)"
                        )
                    await reportStoreFailure(reported)
                    return
                }
                logger.debug("the run store did not record the slot's end; retrying", metadata: ["error": "\(error)"])
                state.withLock { $0.storeWait(id, waiting: true) }
                let engine = clock.engine
                _ = try? await engine.sleep(
                    until: engine.now(clock.intervalClock).addingClamped(delay),
                    on: clock.intervalClock,
                    waker: waker
                )
                delay = min(delay * 2, Self.lastCompletionRetry)
            }
        }
    }

    /// The first and the longest pause between two attempts to record a slot's end (ns).
    private static let firstCompletionRetry: Int64 = 50_000_000
    private static let lastCompletionRetry: Int64 = 250_000_000

    nonisolated(nonsending) private func reportStoreFailure(_ error: any Error) async {
        guard let onError = state.withLock({ $0.onError }) else {
            logger.error("the run store failed", metadata: ["error": "\(error)"])
            return
        }
        await makeTask { await onError(self, error) }.value
    }

    /// Claims `slot`, retrying with the loop's back-off while the store fails; nil when the
    /// store refuses the slot, or when `stop()` is called during the retries.
    nonisolated(nonsending) private func claimSlot(_ slot: Date, store: any RunStore, id: UInt64) async throws -> SlotClaim? {
        try await withStoreRetries(id) { try await store.claim(slot, of: self.name) }
    }

    /// `operation`, retried after a back-off (disnake's, as for handled errors) while it throws:
    /// a store that is down delays the loop, it does not end it; meanwhile the loop's activity
    /// is ``LoopActivity/waitingForStore``. Returns nil when `stop()` was called during a
    /// back-off; throws `CancellationError` when the run is cancelled.
    nonisolated(nonsending) private func withStoreRetries<Value: Sendable>(_ id: UInt64, _ operation: @Sendable () async throws -> Value?) async throws -> Value? {
        var backoff = Backoff()
        defer { state.withLock { $0.storeWait(id, waiting: false) } }
        while true {
            do {
                return try await operation()
            } catch {
                try Task.checkCancellation()
                let engine = clock.engine
                let now = engine.now(clock.intervalClock)
                let jitter: @Sendable (Double) -> Double = state.withLock { $0.jitter }
                let delay = backoff.delay(now: now, jitter: jitter)
                logger.debug(
                    "the run store failed; retrying after a back-off",
                    metadata: ["error": "\(error)", "delay_seconds": "\(Double(delay) / 1e9)"]
                )
                state.withLock { $0.storeWait(id, waiting: true) }
                let reason = try await engine.sleep(until: now.addingClamped(delay), on: clock.intervalClock, waker: waker)
                if reason == .interrupted, runIsStopping { return nil }
            }
        }
    }

    /// `stop()` was called (or the run is gone): store retries give up.
    private var runIsStopping: Bool {
        state.withLock { $0.isStopRequested }
    }
}
