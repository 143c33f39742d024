public import Foundation

/// The right to run one slot of one named loop, granted by a ``RunStore``.
///
/// The fencing token is strictly increasing per loop name across every process that shares the
/// store: pass it to your own writes so that a storage system can reject a write from a claim
/// that has since been superseded (a replica that stalled past its lease).
public struct SlotClaim: Sendable, Hashable {
    /// The loop's name.
    public let loopName: String
    /// The slot this claim is for.
    public let scheduledAt: Date
    /// Strictly increasing per loop name.
    public let fencingToken: UInt64

    /// Creates a claim; stores do this.
    public init(loopName: String, scheduledAt: Date, fencingToken: UInt64) {
        self.loopName = loopName
        self.scheduledAt = scheduledAt
        self.fencingToken = fencingToken
    }
}
