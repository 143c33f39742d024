public import Foundation

/// A snapshot of one loop, as the registry lists it (``Loop/registered``, ``Loop/status``).
public struct LoopStatus: Sendable, CustomStringConvertible {
    /// The loop's ``Loop/name``.
    public let name: String
    /// The schedule, as ``Schedule``'s description gives it (e.g. `every 5.0 s`).
    public let schedule: String
    /// What the loop is doing.
    public let activity: LoopActivity
    /// ``Loop/currentLoop``.
    public let currentLoop: Int
    /// ``Loop/nextIteration``.
    public let nextIteration: Date?
    /// When the latest body attempt began; nil before the first.
    public let lastStart: Date?
    /// How long the latest finished body attempt took; nil before the first finished.
    public let lastDuration: Duration?
    /// The error of the latest body attempt if it failed (a retried one too); nil after a success.
    public let lastError: (any Error)?
    /// Body attempts that threw since the last success, retried ones included.
    public let consecutiveFailures: Int
    /// ``Loop/failed``.
    public let failed: Bool

    /// One line, e.g. `backup: sleeping, iteration 3, next 2026-12-03T02:30:00Z`.
    public var description: String {
        var parts = ["\(activity)", "iteration \(currentLoop)"]
        if let nextIteration { parts.append("next \(nextIteration.iso8601)") }
        if let lastDuration { parts.append("last took \(lastDuration.secondsDescription)") }
        if consecutiveFailures > 0 { parts.append("\(consecutiveFailures) consecutive failures") }
        if let lastError { parts.append("last error: \(lastError)") }
        return "\(name): " + parts.joined(separator: ", ")
    }
}
