public import Foundation

/// When a run's first iteration happens.
public struct FirstIteration: Hashable, Sendable, CustomStringConvertible {
    private enum Kind: Hashable, Sendable {
        case atStart
        case afterOneInterval
        case at(Date)
    }

    private let kind: Kind

    private init(_ kind: Kind) {
        self.kind = kind
    }

    /// A relative interval runs its first iteration as soon as the run starts (after
    /// `beforeLoop`); a wall-clock schedule at its first slot at or after the start. The seed's
    /// rule, and the default.
    public static let atStart = FirstIteration(.atStart)

    /// A relative interval runs its first iteration one interval after the start, and keeps
    /// that grid. A wall-clock schedule's first slot is already a whole step of its schedule
    /// away, so for it this is the same as ``atStart``.
    public static let afterOneInterval = FirstIteration(.afterOneInterval)

    /// The grid begins at `instant`: a relative interval's iterations are scheduled at
    /// `instant + n·interval`, a wall-clock schedule's first slot is the first at or after
    /// `instant`. An instant that has already passed when the run starts makes its slots
    /// missed ones: the loop's ``MissedTickPolicy`` decides what runs.
    public static func at(_ instant: Date) -> FirstIteration { FirstIteration(.at(instant)) }

    /// `atStart`, `afterOneInterval`, or `at <ISO 8601 instant>`.
    public var description: String {
        switch kind {
        case .atStart: return "atStart"
        case .afterOneInterval: return "afterOneInterval"
        case .at(let instant): return "at \(instant.iso8601)"
        }
    }

    /// The instant given to ``at(_:)``; nil for the other two.
    var instant: Date? {
        if case .at(let instant) = kind { return instant }
        return nil
    }

    var waitsOneInterval: Bool { kind == .afterOneInterval }
}
