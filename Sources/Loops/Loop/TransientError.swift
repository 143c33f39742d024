/// Marks an error as transient: a loop with `reconnect` retries the iteration after a back-off
/// instead of ending, as it does for `POSIXError` and `URLError`.
///
/// ```swift
/// struct UpstreamUnavailable: TransientError {}
/// ```
public protocol TransientError: Error {}
