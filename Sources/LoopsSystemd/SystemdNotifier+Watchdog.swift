public import Logging
public import Loops

extension SystemdNotifier {
    /// A ``/Loops/Loop`` (not started) that feeds the watchdog with ``watchdog()`` (`sd_notify`
    /// `WATCHDOG=1`) every half of ``watchdogInterval``, the interval `sd_watchdog_enabled(3)`
    /// recommends; nil when the watchdog is not enabled for this process.
    ///
    /// It feeds the watchdog whatever the rest of the process does: to have systemd restart a
    /// service whose loops are wedged, use ``watchdogLoop(guarding:clock:logger:)``.
    ///
    /// Start it once the service is ready (`try loop.start()`, or run it in a ServiceLifecycle
    /// `ServiceGroup`), and cancel it when the service stops. A failed keep-alive is logged at
    /// `.warning` and does not end the loop: the next one may succeed before systemd's deadline.
    ///
    /// - Parameters:
    ///   - clock: the clock the interval is measured on; `.suspending` (CLOCK_MONOTONIC) by
    ///     default, the clock systemd measures the watchdog on.
    ///   - logger: where failed keep-alives are logged; by default the task-local
    ///     `Logger.current` of the caller.
    /// - Throws: ``SystemdError`` when `WATCHDOG_USEC` does not parse. A timeout too long for a
    ///   loop's interval (over 584 years) gets a keep-alive every 292 years instead: never an
    ///   error.
    public func watchdogLoop(clock: LoopClock = .suspending, logger: Logger = Logger.current) throws -> Loop? {
        try watchdogLoop(guarding: [], clock: clock, logger: logger)
    }

    /// A ``/Loops/Loop`` (not started) that feeds the watchdog every half of ``watchdogInterval``, but
    /// only while every guarded loop is healthy; nil when the watchdog is not enabled for this
    /// process.
    ///
    /// Before each keep-alive it asks each loop's
    /// ``/Loops/Loop/health(stallTimeout:overdueTolerance:)`` with the limits of its
    /// ``GuardedLoop``. While one is not `.healthy` — an iteration running past its stall
    /// timeout, a wake overdue by more than its tolerance, a run ended by an unhandled error —
    /// no `WATCHDOG=1` is sent, so that with `WatchdogSec=` systemd kills and (with
    /// `Restart=`) restarts the service: keep-alives stop within one keep-alive interval of the
    /// moment the loop became unhealthy. When a loop becomes unhealthy, one `.critical` line is
    /// logged with its name (metadata `loop.name`) and what it is stuck in (metadata
    /// `loop.health`, e.g. `stalled in runningBody for 95.0 s`); if every loop is healthy again
    /// before systemd acts, keep-alives resume and one `.debug` line says so.
    ///
    /// ```swift
    /// if let watchdog = try notifier.watchdogLoop(guarding: [GuardedLoop(backup, stallTimeout: .minutes(30))]) {
    ///     try watchdog.start()
    /// }
    /// ```
    ///
    /// With no guarded loop this is ``watchdogLoop(clock:logger:)``. A failed keep-alive is
    /// logged at `.warning` and does not end the loop.
    ///
    /// - Parameters:
    ///   - loops: the loops whose health the keep-alives depend on.
    ///   - clock: the clock the keep-alive interval is measured on; `.suspending`
    ///     (CLOCK_MONOTONIC) by default, the clock systemd measures the watchdog on. Each
    ///     guarded loop's health is measured on that loop's own clock.
    ///   - logger: where unhealthy loops, recoveries and failed keep-alives are logged; by
    ///     default the task-local `Logger.current` of the caller.
    /// - Throws: ``SystemdError`` when `WATCHDOG_USEC` does not parse.
    public func watchdogLoop(
        guarding loops: [GuardedLoop],
        clock: LoopClock = .suspending,
        logger: Logger = Logger.current
    ) throws -> Loop? {
        let notifier = self
        return try watchdogLoop(guarding: loops, clock: clock, logger: logger) {
            do {
                try notifier.watchdog()
            } catch {
                logger.warning("systemd watchdog keep-alive failed: \(error)")
            }
        }
    }

    /// ``watchdogLoop(guarding:clock:logger:)`` with the keep-alive given: the `loops` tool
    /// sends it through its own reporting of failed notifications.
    package func watchdogLoop(
        guarding loops: [GuardedLoop],
        clock: LoopClock,
        logger: Logger,
        keepAlive: @escaping @Sendable () -> Void
    ) throws -> Loop? {
        guard let timeout = try watchdogInterval else { return nil }
        // systemd accepts a WATCHDOG_USEC of up to 2^64 − 2 µs (584,942 years); a loop's interval
        // is at most 9,223,372,036 s (292 years), so half of a longer timeout is capped there.
        let interval = min(timeout / 2, Self.longestKeepAliveInterval)
        let gate = WatchdogGate(guarding: loops, logger: logger)
        return try Loop(schedule: .every(interval), reconnect: false, name: "systemd-watchdog", clock: clock, logger: logger) { _ in
            if gate.allowsKeepAlive() { keepAlive() }
        }
    }
}

extension SystemdNotifier {
    /// The longest interval a ``Loop`` takes: Int64 nanoseconds, whole seconds.
    static let longestKeepAliveInterval = Duration.seconds(Int64.max / 1_000_000_000)
}
