/// The one error type swift-loops throws for bad input and for failures of the system timer.
///
/// `message` names the bad value ("seconds must be finite, got nan"); `description` is the
/// message, so `"\(error)"` reads well in logs.
public struct LoopError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of problem a ``LoopError`` reports.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Kind: String, Hashable, Sendable {
            case invalidInterval
            case invalidCount
            case invalidTimeOfDay
            case invalidSchedule
            case invalidTimeZone
            case alreadyRunning
            case systemTimer
            case invalidOption
            case timedOut
            case storeFailed
            case corruptRecord
            case claimLost
        }

        private let kind: Kind

        private init(_ kind: Kind) {
            self.kind = kind
        }

        /// An interval that is negative, not finite, or too large to represent.
        public static let invalidInterval = Code(.invalidInterval)
        /// A `count` that is zero or negative.
        public static let invalidCount = Code(.invalidCount)
        /// A time of day with a component out of range, or an empty list of times.
        public static let invalidTimeOfDay = Code(.invalidTimeOfDay)
        /// A calendar or cron expression that does not parse.
        public static let invalidSchedule = Code(.invalidSchedule)
        /// A time-zone name that the system does not know, or, for a schedule read in the local
        /// zone, a `TZ` that names no zone `TimeZone` can represent (a POSIX rule string such as
        /// `EST5EDT,M3.2.0,M11.1.0`).
        public static let invalidTimeZone = Code(.invalidTimeZone)
        /// `start()` or `run()` while a run is active and not being cancelled.
        public static let alreadyRunning = Code(.alreadyRunning)
        /// The kernel refused a timer operation (the message names the call and the errno).
        public static let systemTimer = Code(.systemTimer)
        /// A loop option out of range: a `timeout` that is not positive, a negative randomized
        /// delay, an empty name (the message names the option and the value).
        public static let invalidOption = Code(.invalidOption)
        /// An iteration ran past the loop's `timeout`: its body was cancelled. The error goes
        /// through the loop's error path like one the body threw (`onError`, the failure
        /// policy; retried only if `LoopError` is among the handled types).
        public static let timedOut = Code(.timedOut)
        /// A ``RunStore`` could not be read or written (the message names the store, the loop
        /// and the cause). Claims that fail this way are retried with the loop's back-off.
        public static let storeFailed = Code(.storeFailed)
        /// A ``RunStore`` holds a record it cannot read: a corrupt or foreign file, a row of an
        /// unknown schema version (the message names the file or table and what is wrong).
        public static let corruptRecord = Code(.corruptRecord)
        /// A slot's claim lapsed before the body finished (its lease ran out, or another process
        /// took the slot over): the body's writes may race a rerun of the same slot, which holds
        /// a higher fencing token.
        public static let claimLost = Code(.claimLost)

        /// The code's name, e.g. `invalidInterval`.
        public var description: String { kind.rawValue }
    }

    /// What kind of problem this is.
    public let code: Code
    /// A sentence that names the bad value.
    public let message: String

    /// Creates an error; the library does this, users may too (for instance in test doubles).
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message.
    public var description: String { message }
}
