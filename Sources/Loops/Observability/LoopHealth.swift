/// Whether a loop is making progress, from ``Loop/health(stallTimeout:overdueTolerance:)``:
/// what a watchdog asks before it tells the service manager that all is well.
public enum LoopHealth: Hashable, Sendable, CustomStringConvertible {
    /// Running as scheduled, sleeping until its next iteration, in a hook, or not running
    /// without a failure.
    case healthy
    /// An iteration (`.runningBody`, or `.retrying` a handled error) has been running for longer
    /// than the stall timeout.
    case stalled(LoopActivity, for: Duration)
    /// The loop sleeps past its next iteration's instant by more than the tolerance: the wake
    /// did not come, or nothing ran the woken loop (a blocked executor).
    case overdue(by: Duration)
    /// The last run ended by an unhandled error (the error's description).
    case failed(String)

    /// Whether this is ``healthy``.
    public var isHealthy: Bool { self == .healthy }

    /// A sentence for logs, e.g. `stalled in runningBody for 95.0 s`.
    public var description: String {
        switch self {
        case .healthy:
            return "healthy"
        case .stalled(let activity, let duration):
            return "stalled in \(activity) for \(duration.secondsDescription)"
        case .overdue(let duration):
            return "next iteration overdue by \(duration.secondsDescription)"
        case .failed(let error):
            return "ended by an unhandled error: \(error)"
        }
    }
}

extension Duration {
    /// Seconds with up to three decimals, e.g. `1.5 s`.
    var secondsDescription: String {
        let (seconds, attoseconds) = components
        let milliseconds = Double(seconds) * 1000 + Double(attoseconds / 1_000_000_000_000_000)
        return "\((milliseconds / 1000 * 1000).rounded() / 1000) s"
    }
}
