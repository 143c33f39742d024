import Foundation
import Loops

/// A ``RunStore`` in memory for the loop's side of the protocol: it can refuse slots, fail,
/// hand over an earlier lapsed slot, and lose a claim on request.
final class MemoryRunStore: RunStore {
    struct Completion: Equatable {
        let scheduledAt: Date
        let fencingToken: UInt64
        let outcome: RunRecord.Outcome
    }

    private struct State {
        var nextToken: UInt64 = 1
        var claimed: [Date] = []
        var refused: Set<Date> = []
        var failuresLeft = 0
        var completionFailuresLeft = 0
        var handOver: Date?
        var last: RunRecord?
        var completions: [Completion] = []
        var asked: [Date] = []
        var lossWaiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var lost: Set<UInt64> = []
    }

    private let state = LockedValue(State())

    init(lastRun: RunRecord? = nil) {
        state.withLock { $0.last = lastRun }
    }

    func refuse(_ slot: Date) { state.withLock { _ = $0.refused.insert(slot) } }
    func failNextClaims(_ count: Int) { state.withLock { $0.failuresLeft = count } }
    func failNextCompletions(_ count: Int) { state.withLock { $0.completionFailuresLeft = count } }
    func handOverOnNextClaim(_ slot: Date) { state.withLock { $0.handOver = slot } }

    /// Ends `waitForLoss` for the claim with `token`.
    func lose(token: UInt64) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.lost.insert(token)
            return state.lossWaiters.removeValue(forKey: token)
        }
        waiter?.resume()
    }

    var completions: [Completion] { state.withLock { $0.completions } }
    var asked: [Date] { state.withLock { $0.asked } }
    var claimed: [Date] { state.withLock { $0.claimed } }
    var waitingForLoss: Int { state.withLock { $0.lossWaiters.count } }

    func lastRun(of loopName: String) async throws -> RunRecord? {
        state.withLock { $0.last }
    }

    func claim(_ scheduledAt: Date, of loopName: String) async throws -> SlotClaim? {
        try state.withLock { state in
            state.asked.append(scheduledAt)
            if state.failuresLeft > 0 {
                state.failuresLeft -= 1
                throw SomeTransientError()
            }
            let slot = state.handOver ?? scheduledAt
            state.handOver = nil
            guard !state.refused.contains(slot) else { return nil }
            state.claimed.append(slot)
            defer { state.nextToken += 1 }
            return SlotClaim(loopName: loopName, scheduledAt: slot, fencingToken: state.nextToken)
        }
    }

    func complete(_ claim: SlotClaim, outcome: RunRecord.Outcome, finishedAt: Date) async throws {
        try state.withLock { state in
            if state.completionFailuresLeft > 0 {
                state.completionFailuresLeft -= 1
                throw SomeTransientError()
            }
            state.completions.append(Completion(scheduledAt: claim.scheduledAt, fencingToken: claim.fencingToken, outcome: outcome))
            state.last = RunRecord(scheduledAt: claim.scheduledAt, finishedAt: finishedAt, outcome: outcome, fencingToken: claim.fencingToken)
        }
    }

    func waitForLoss(of claim: SlotClaim) async {
        let token = claim.fencingToken
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.lost.contains(token) || Task.isCancelled { return true }
                    state.lossWaiters[token] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.lossWaiters.removeValue(forKey: token) }
            waiter?.resume()
        }
    }
}
