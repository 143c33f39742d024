public import Foundation

/// Where a loop records its runs: so that a restarted process catches up on the slots it
/// missed (``CatchUp``), and, with a store that several processes share, so that each slot of a
/// named loop runs in one process only.
///
/// A loop with a store claims each slot before its body runs (``claim(_:of:)``), runs the body
/// only when the claim is granted, and completes the claim when the body has finished
/// (``complete(_:outcome:finishedAt:)``). Retries of handled errors happen under the same claim.
public protocol RunStore: Sendable {
    /// The last slot of `loopName` that was completed, or nil when none was.
    func lastRun(of loopName: String) async throws -> RunRecord?

    /// Claims `scheduledAt` of `loopName` for this process: nil when the slot has already run or
    /// is being run elsewhere under a live claim. A store that is unreachable throws; the loop
    /// retries with its back-off.
    ///
    /// A store shared by several processes may grant, instead, an *earlier* slot of the same loop
    /// whose claim lapsed (its process died mid-body): the returned claim's `scheduledAt` is then
    /// before the one asked for. The loop runs the body for that earlier slot, completes it, and
    /// asks again for `scheduledAt`, so a slot whose process died runs again on another, with a
    /// higher fencing token.
    func claim(_ scheduledAt: Date, of loopName: String) async throws -> SlotClaim?

    /// Records the end of a claimed slot. Throws when the claim was lost (a store shared by
    /// several processes lets a claim lapse when it is not completed within its lease).
    func complete(_ claim: SlotClaim, outcome: RunRecord.Outcome, finishedAt: Date) async throws
    /// Suspends until `claim` is lost (see the default implementation); cancelled by the loop
    /// when the body has finished.
    func waitForLoss(of claim: SlotClaim) async
}

extension RunStore {
    /// Suspends until `claim` is lost and returns then; the loop cancels the body when it
    /// returns, so that a slot never runs in two processes at once. The loop cancels this call
    /// when the body has finished.
    ///
    /// A claim is lost when the store could not renew its lease in time (a store shared by
    /// several processes lets a slot be taken over once its lease has run out) or when another
    /// process took the slot over. This default never returns on its own: a store that a single
    /// process owns does not lose its claims.
    public func waitForLoss(of claim: SlotClaim) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(86_400))
        }
    }
}
