/// What a loop does when it wakes after one or more of its scheduled instants have passed:
/// the body ran longer than the interval, the process was suspended, or the wall clock jumped
/// forward.
public struct MissedTickPolicy: Hashable, Sendable, CustomStringConvertible {
    private enum Kind: String, Hashable, Sendable {
        case burst
        case delay
        case skip
    }

    private let kind: Kind

    private init(_ kind: Kind) {
        self.kind = kind
    }

    /// One run for every missed slot, back to back, until the loop has caught up
    /// (discord.py's behaviour).
    public static let burst = MissedTickPolicy(.burst)

    /// One run at once, then the schedule is re-anchored to that moment
    /// (disnake's behaviour; the default for relative intervals).
    public static let delay = MissedTickPolicy(.delay)

    /// One run at once, then the next slot of the original grid that lies after now
    /// (the default for wall-clock schedules).
    public static let skip = MissedTickPolicy(.skip)

    /// `burst`, `delay` or `skip`.
    public var description: String { kind.rawValue }

    var isBurst: Bool { kind == .burst }
    var isDelay: Bool { kind == .delay }
    var isSkip: Bool { kind == .skip }
}
