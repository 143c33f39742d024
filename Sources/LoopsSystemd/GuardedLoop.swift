import Logging
public import Loops

/// A loop that the systemd watchdog depends on: ``SystemdNotifier/watchdogLoop(guarding:clock:logger:)``
/// sends `WATCHDOG=1` only while every guarded loop is healthy, so that `WatchdogSec=` restarts a
/// service whose loop is wedged.
///
/// ```swift
/// let watchdog = try notifier.watchdogLoop(guarding: [
///     GuardedLoop(backup, stallTimeout: .minutes(30)),
///     GuardedLoop(heartbeat),
/// ])
/// ```
///
/// A loop is healthy as ``/Loops/Loop/health(stallTimeout:overdueTolerance:)`` says: no
/// iteration running (or retrying) past `stallTimeout`, no wake overdue by more than
/// `overdueTolerance`, and not ended by an unhandled error. A loop that is not running — not
/// started yet, or ended by `stop()`, `count` or `cancel()` — is healthy: guard only loops whose
/// end ends the service.
public struct GuardedLoop: Sendable {
    /// The loop whose health is checked before each keep-alive.
    public let loop: Loop
    /// The longest an iteration may run before the loop counts as stalled; nil means the loop's
    /// `timeout` plus ``overdueTolerance`` when it has one, else no limit (see
    /// ``/Loops/Loop/health(stallTimeout:overdueTolerance:)``). A negative value counts as zero.
    public let stallTimeout: Duration?
    /// How late past its next iteration's instant a sleeping loop may still be asleep before
    /// it counts as overdue (its wake never came, or nothing ran it). A negative value counts
    /// as zero.
    public let overdueTolerance: Duration

    /// Guards `loop` with a stall timeout (nil: the loop's own `timeout` plus the tolerance,
    /// or none) and an overdue tolerance (30 s by default).
    public init(_ loop: Loop, stallTimeout: Duration? = nil, overdueTolerance: Duration = .seconds(30)) {
        self.loop = loop
        self.stallTimeout = stallTimeout
        self.overdueTolerance = overdueTolerance
    }

    /// The loop's health now, with this guard's limits.
    public var health: LoopHealth {
        loop.health(stallTimeout: stallTimeout, overdueTolerance: overdueTolerance)
    }
}

/// Decides before each keep-alive whether the guarded loops allow it, and logs the changes:
/// one `.critical` line when a loop stops being healthy (naming it and what it is stuck in),
/// one `.debug` line when every loop is healthy again and keep-alives resume.
final class WatchdogGate: Sendable {
    let guarded: [GuardedLoop]
    let logger: Logger
    /// For each guarded loop, whether it was unhealthy at the last check.
    private let unhealthy: LockedValue<[Bool]>

    init(guarding guarded: [GuardedLoop], logger: Logger) {
        self.guarded = guarded
        self.logger = logger
        self.unhealthy = LockedValue([Bool](repeating: false, count: guarded.count))
    }

    /// Whether a keep-alive may be sent now: every guarded loop is healthy.
    func allowsKeepAlive() -> Bool {
        guard !guarded.isEmpty else { return true }
        let verdicts = guarded.map(\.health)
        // Compared and updated under the lock, so that two overlapping checks (there are none
        // in a watchdog loop, whose iterations never overlap) would still log each change once.
        let (newlyUnhealthy, recovered) = unhealthy.withLock { previous -> ([Int], Bool) in
            var newly: [Int] = []
            let wasUnhealthy = previous.contains(true)
            for (index, verdict) in verdicts.enumerated() {
                let isUnhealthy = !verdict.isHealthy
                if isUnhealthy, !previous[index] { newly.append(index) }
                previous[index] = isUnhealthy
            }
            return (newly, wasUnhealthy && !previous.contains(true))
        }
        for index in newlyUnhealthy {
            let name = guarded[index].loop.name
            logger.critical(
                "loop '\(name)' is unhealthy (\(verdicts[index])): systemd watchdog keep-alives stop until it recovers",
                metadata: ["loop.name": "\(name)", "loop.health": "\(verdicts[index])"]
            )
        }
        if recovered {
            logger.debug("every guarded loop is healthy again: systemd watchdog keep-alives resume")
        }
        return verdicts.allSatisfy(\.isHealthy)
    }
}
