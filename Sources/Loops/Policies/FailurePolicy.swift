/// What an unhandled error of an iteration does to the loop: an error that `reconnect` does not
/// retry, thrown by the body or raised as a ``LoopError/Code/timedOut`` timeout.
///
/// Either way `onError` runs first (by default: one `.error` log line) and `failed` becomes true.
public struct FailurePolicy: Hashable, Sendable, CustomStringConvertible {
    private enum Kind: String, Hashable, Sendable {
        case endLoop
        case keepSchedule
    }

    private let kind: Kind

    private init(_ kind: Kind) {
        self.kind = kind
    }

    /// The run ends: `afterLoop` runs and `run()` rethrows the error (disnake's rule; the
    /// default).
    public static let endLoop = FailurePolicy(.endLoop)

    /// The error is reported through `onError` and the loop goes on with its next scheduled
    /// iteration, as if the failed one had been skipped: the iteration is not counted
    /// (`currentLoop` and `count` count successful bodies), the grid does not move.
    public static let keepSchedule = FailurePolicy(.keepSchedule)

    /// `endLoop` or `keepSchedule`.
    public var description: String { kind.rawValue }

    var keepsSchedule: Bool { kind == .keepSchedule }
}
