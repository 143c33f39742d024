public import Logging
public import Loops

extension SystemdNotifier {
    /// A ``/Loops/Loop`` (not started) that feeds the watchdog with ``watchdog()`` (`sd_notify`
    /// `WATCHDOG=1`) every half of ``watchdogInterval``, the interval `sd_watchdog_enabled(3)`
    /// recommends; nil when the watchdog is not enabled for this process.
    ///
    /// Start it once the service is ready (`try loop.start()`, or run it in a ServiceLifecycle
    /// `ServiceGroup`), and cancel it when the service stops. A failed keep-alive is logged at
    /// `.warning` and does not end the loop: the next one may succeed before systemd's deadline.
    ///
    /// - Parameters:
    ///   - clock: the clock the interval is measured on; `.suspending` (CLOCK_MONOTONIC) by
    ///     default, the clock systemd measures the watchdog on.
    ///   - logger: where failed keep-alives are logged.
    /// - Throws: ``SystemdError`` when `WATCHDOG_USEC` does not parse. A timeout too long for a
    ///   loop's interval (over 584 years) gets a keep-alive every 292 years instead: never an
    ///   error.
    public func watchdogLoop(clock: LoopClock = .suspending, logger: Logger = Logger(label: "swift-loops.systemd")) throws
        -> Loop?
    {
        guard let timeout = try watchdogInterval else { return nil }
        let notifier = self
        // systemd accepts a WATCHDOG_USEC of up to 2^64 − 2 µs (584,942 years); a loop's interval
        // is at most 9,223,372,036 s (292 years), so half of a longer timeout is capped there.
        let keepAlive = min(timeout / 2, Self.longestKeepAliveInterval)
        return try Loop(schedule: .every(keepAlive), reconnect: false, clock: clock, logger: logger) { _ in
            do {
                try notifier.watchdog()
            } catch {
                logger.warning("systemd watchdog keep-alive failed: \(error)")
            }
        }
    }
}

extension SystemdNotifier {
    /// The longest interval a ``Loop`` takes: Int64 nanoseconds, whole seconds.
    static let longestKeepAliveInterval = Duration.seconds(Int64.max / 1_000_000_000)
}
