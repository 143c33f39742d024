public import Loops

/// PostgreSQL could not be reached, or did not answer in time: transient, so a loop retries the
/// claim after its back-off (``/Loops/TransientError``).
public struct PostgresRunStoreError: TransientError, CustomStringConvertible {
    /// What the store was doing, and why it failed.
    public let message: String

    /// The message.
    public var description: String { message }
}
