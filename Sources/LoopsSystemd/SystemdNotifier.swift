import CSystemd

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Talks to the service manager through libsystemd's `sd_notify(3)`: readiness, status text,
/// stopping and reloading, and watchdog keep-alives for units with `Type=notify` and
/// `WatchdogSec=`.
///
/// ```swift
/// let notifier = SystemdNotifier()
/// try notifier.ready()
/// let watchdog = try notifier.watchdogLoop(logger: logger)
/// try watchdog?.start()
/// ```
///
/// Outside systemd (`NOTIFY_SOCKET` unset) every notification does nothing and returns `false`,
/// so a daemon can call these unconditionally. Each call opens, uses and closes its own socket
/// inside libsystemd, so a notifier is safe to use from any thread. The environment is read at
/// each call and never unset.
public struct SystemdNotifier: Sendable {
    /// A notifier for the current process's `NOTIFY_SOCKET` and `WATCHDOG_USEC`.
    public init() {}

    /// Whether the service manager listens: `NOTIFY_SOCKET` is set and not empty (the variable
    /// `sd_notify` reads).
    public var isAvailable: Bool {
        guard let value = getenv("NOTIFY_SOCKET") else { return false }
        return value.pointee != 0
    }

    /// Sends raw `sd_notify` assignments, one `KEY=VALUE` per line (see `sd_notify(3)`).
    ///
    /// - Returns: `true` when the message was sent, `false` when `NOTIFY_SOCKET` is not set or
    ///   empty (as ``isAvailable`` says; libsystemd itself would reject an empty one with EINVAL).
    /// - Throws: ``SystemdError`` when `sd_notify` fails (for instance the socket is gone, or
    ///   `NOTIFY_SOCKET` is a relative or too long path).
    @discardableResult
    public func notify(_ state: String) throws -> Bool {
        guard isAvailable else { return false }
        let result = sd_notify(0, state)
        if result < 0 {
            throw SystemdError(function: "sd_notify", argument: state, errno: -result)
        }
        return result > 0
    }

    /// Tells the service manager that start-up is finished: `sd_notify` with `READY=1`
    /// (`Type=notify` units are "active" from then on). An optional status line is sent with it.
    ///
    /// - Returns: `true` when sent, `false` when `NOTIFY_SOCKET` is not set.
    /// - Throws: ``SystemdError`` when `sd_notify` fails.
    @discardableResult
    public func ready(status: String? = nil) throws -> Bool {
        try notify("READY=1" + (status.map { "\nSTATUS=" + Self.oneLine($0) } ?? ""))
    }

    /// Tells the service manager that the service is shutting down: `sd_notify` with
    /// `STOPPING=1`.
    ///
    /// - Returns: `true` when sent, `false` when `NOTIFY_SOCKET` is not set.
    /// - Throws: ``SystemdError`` when `sd_notify` fails.
    @discardableResult
    public func stopping() throws -> Bool {
        try notify("STOPPING=1")
    }

    /// Tells the service manager that the service reloads its configuration: `sd_notify` with
    /// `RELOADING=1` and `MONOTONIC_USEC=` (required by `Type=notify-reload`, systemd ≥ 253).
    /// Call ``ready(status:)`` when the reload is done.
    ///
    /// - Returns: `true` when sent, `false` when `NOTIFY_SOCKET` is not set.
    /// - Throws: ``SystemdError`` when `sd_notify` fails.
    @discardableResult
    public func reloading() throws -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let microseconds = Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000
        return try notify("RELOADING=1\nMONOTONIC_USEC=\(microseconds)")
    }

    /// Sets the free-form status line `systemctl status` shows: `sd_notify` with `STATUS=`.
    /// Line breaks are replaced by spaces, since they would end the assignment.
    ///
    /// - Returns: `true` when sent, `false` when `NOTIFY_SOCKET` is not set.
    /// - Throws: ``SystemdError`` when `sd_notify` fails.
    @discardableResult
    public func status(_ text: String) throws -> Bool {
        try notify("STATUS=" + Self.oneLine(text))
    }

    /// Feeds the watchdog: `sd_notify` with `WATCHDOG=1`. With `WatchdogSec=`, systemd kills
    /// the service when no keep-alive arrives within ``watchdogInterval``;
    /// ``watchdogLoop(clock:logger:)`` sends them for you.
    ///
    /// - Returns: `true` when sent, `false` when `NOTIFY_SOCKET` is not set.
    /// - Throws: ``SystemdError`` when `sd_notify` fails.
    @discardableResult
    public func watchdog() throws -> Bool {
        try notify("WATCHDOG=1")
    }

    /// The watchdog timeout systemd expects keep-alives within, from `sd_watchdog_enabled`
    /// (`WATCHDOG_USEC`, for this process only when `WATCHDOG_PID` is set); nil when the
    /// watchdog is not enabled for this process.
    ///
    /// - Throws: ``SystemdError`` when `WATCHDOG_USEC` or `WATCHDOG_PID` does not parse.
    public var watchdogInterval: Duration? {
        get throws {
            var microseconds: UInt64 = 0
            let result = sd_watchdog_enabled(0, &microseconds)
            if result < 0 {
                let given = getenv("WATCHDOG_USEC").map { String(cString: $0) } ?? ""
                throw SystemdError(function: "sd_watchdog_enabled", argument: "WATCHDOG_USEC=\(given)", errno: -result)
            }
            guard result > 0, microseconds > 0 else { return nil }
            return .microseconds(microseconds)
        }
    }

    /// A status text made safe for one `STATUS=` assignment.
    private static func oneLine(_ text: String) -> String {
        String(text.map { $0.isNewline ? " " : $0 })
    }
}
