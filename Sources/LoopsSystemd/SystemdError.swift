#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A libsystemd call that failed: the function, what it was asked to do, and the `errno` it
/// returned (libsystemd reports failures as negative errno values; this holds the positive one).
///
/// `description` reads like `sd_notify(READY=1) failed: No such file or directory (errno 2)`.
/// A service that is not supervised by systemd never sees this error: notifications then do
/// nothing and return `false`.
public struct SystemdError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The libsystemd function that failed, e.g. `sd_notify`.
    public let function: String
    /// What was asked of it, e.g. the notification `READY=1` or `WATCHDOG_USEC=abc`.
    public let argument: String
    /// The positive `errno` value (libsystemd returned its negation).
    public let errno: Int32

    /// Creates an error; the library does this from a negative libsystemd result, tests may too.
    public init(function: String, argument: String, errno: Int32) {
        self.function = function
        self.argument = argument
        self.errno = errno
    }

    /// `sd_notify(READY=1) failed: <strerror> (errno N)`.
    public var description: String {
        let reason = strerror(errno).map { String(cString: $0) } ?? "unknown error"
        return "\(function)(\(argument)) failed: \(reason) (errno \(errno))"
    }
}
