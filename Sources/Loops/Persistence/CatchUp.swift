/// What a loop with a ``RunStore`` does, when it starts, about the slots that passed since the
/// last one recorded (while the process was down).
public enum CatchUp: Sendable, Hashable {
    /// Nothing: the first slot is the schedule's first from now (the seed's behaviour).
    case none
    /// The latest missed slot runs once, at start; the others are skipped.
    case latest
    /// Every missed slot runs, oldest first, up to `limit` of the most recent ones.
    case all(limit: Int)
}

extension CatchUp {
    /// The largest `limit` of ``all(limit:)``: a bound on the work a restart can queue.
    public static let maximumLimit = 100_000
}
