/// What a loop is doing at the moment, as ``LoopStatus`` and ``LoopHealth`` report it.
public enum LoopActivity: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// Not running: never started, or its last run has ended.
    case idle
    /// A run was accepted and has not begun yet (it may wait for a cancelled run to finish).
    case starting
    /// `beforeLoop` runs.
    case beforeLoop
    /// Waiting for the next iteration.
    case sleeping
    /// The body runs.
    case runningBody
    /// The body threw a handled error and waits for its back-off before it runs again.
    case retrying
    /// `afterLoop` runs.
    case afterLoop
    /// The loop's ``RunStore`` failed and the loop waits to try again: to claim a slot, to
    /// record the end of one, or to read the last run at start. Not a stall: ``Loop/health(stallTimeout:overdueTolerance:)``
    /// reports it healthy, since restarting the process would not bring the store back.
    case waitingForStore

    /// The raw value, e.g. `runningBody`.
    public var description: String { rawValue }
}
