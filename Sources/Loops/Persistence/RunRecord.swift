public import Foundation

/// What a ``RunStore`` keeps of a loop's last slot: when it was scheduled, when it finished,
/// how it ended, and the fencing token it ran under.
public struct RunRecord: Sendable, Hashable, Codable {
    /// How a recorded slot ended.
    public enum Outcome: Sendable, Hashable, Codable {
        /// The body returned (after any retries of handled errors).
        case succeeded
        /// The body threw an unhandled error; the associated value is its description.
        case failed(String)
        /// The run was cancelled during the body.
        case cancelled
    }

    /// The slot: the instant the schedule gave for this iteration (before any randomized delay).
    public var scheduledAt: Date
    /// When the body finished.
    public var finishedAt: Date
    /// How the body ended.
    public var outcome: Outcome
    /// The fencing token the slot ran under.
    public var fencingToken: UInt64

    /// Creates a record.
    public init(scheduledAt: Date, finishedAt: Date, outcome: Outcome, fencingToken: UInt64) {
        self.scheduledAt = scheduledAt
        self.finishedAt = finishedAt
        self.outcome = outcome
        self.fencingToken = fencingToken
    }
}
