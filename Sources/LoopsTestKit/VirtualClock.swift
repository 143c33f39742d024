public import Foundation
public import Loops

/// Simulated time for tests of code that uses ``/Loops/Loop``: loops created with
/// ``loopClock`` sleep on this clock, and ``advance(by:)`` runs them, exactly and fast.
///
/// ```swift
/// let clock = VirtualClock()
/// let loop = try Loop(seconds: 5, clock: clock.loopClock) { _ in ticks.increment() }
/// loop.start()
/// await clock.advance(by: .seconds(12))   // iterations at 0 s, 5 s and 10 s have run
/// ```
///
/// `advance` returns only once every loop that was due by then has run its body and gone back
/// to sleep (or ended): no yields and no polling. A body that waits for something other than
/// this clock (a network reply, a continuation the test resumes later) keeps `advance` waiting,
/// so resolve such waits before advancing. Inside a body, ``sleep(for:)`` simulates work that
/// takes time. A loop with interval 0 never goes back to sleep, so `advance` only returns once
/// it has stopped (give it a `count`).
///
/// No value traps: simulated time is Int64 nanoseconds (boot time from 0, wall time from 1970),
/// and every duration, date or step is clamped to what that holds rather than wrapping. A
/// duration beyond ±292 years saturates; a date after 2262-04-11T23:47:16Z (or +infinity) reads
/// as that instant, one before 1677-09-21T00:12:44Z (or −infinity) as that instant plus the boot
/// time (wall time is an offset from boot time, and the offset is what clamps); a NaN date reads
/// as 1970-01-01T00:00:00Z, so `advance(to:)` a NaN date does nothing. These are documented in
/// the bad-input matrix of Documentation/Reliability.md.
public final class VirtualClock: Sendable {
    let engine: VirtualEngine

    /// A clock whose wall time starts at `wallTime` (default 2026-01-01T00:00:00Z) and whose
    /// boot time starts at `bootTime` (a negative one reads as zero: a boot clock starts at 0).
    public init(
        wallTime: Date = Date(timeIntervalSince1970: 1_767_225_600),
        bootTime: Duration = .seconds(1000)
    ) {
        engine = VirtualEngine(wallTime: wallTime, bootTime: bootTime)
    }

    /// The clock to create loops with: intervals count simulated suspends
    /// (as ``/Loops/LoopClock/continuous``).
    public var loopClock: LoopClock {
        LoopClock(engine: engine, intervalClock: .continuous)
    }

    /// The clock to create loops with whose intervals stand still during a simulated suspend
    /// (as ``/Loops/LoopClock/suspending``).
    public var suspendingLoopClock: LoopClock {
        LoopClock(engine: engine, intervalClock: .suspending)
    }

    /// The simulated wall-clock time.
    public var now: Date {
        Date(timeIntervalSince1970: Double(engine.now(.realtime)) / 1e9)
    }

    /// Simulated time since boot (the continuous clock).
    public var uptime: Duration {
        .nanoseconds(engine.now(.continuous))
    }

    /// Moves time forward by `duration`, running every loop due on the way, in order, and
    /// returns once they are all asleep again. A negative duration does nothing.
    public func advance(by duration: Duration) async {
        let target = engine.now(.continuous).addingSaturated(duration.virtualNanoseconds)
        await engine.advance(toContinuous: target, suspending: false)
    }

    /// Moves time forward until the wall clock reads `date` (nothing happens for a date in the
    /// past, or NaN).
    public func advance(to date: Date) async {
        let delta = date.virtualNanoseconds.subtractingSaturated(engine.now(.realtime))
        guard delta > 0 else {
            await settle()
            return
        }
        await advance(by: .nanoseconds(delta))
    }

    /// Simulates a system suspend of `duration`: the continuous clock and the wall clock move,
    /// the suspending clock does not. Loops due during the suspend run when it ends.
    public func suspend(for duration: Duration) async {
        let target = engine.now(.continuous).addingSaturated(duration.virtualNanoseconds)
        await engine.settleSuspend(to: target)
    }

    /// Steps the wall clock by `offset` (positive: forward, negative: backward) without moving
    /// elapsed time, as `settimeofday` or an NTP step would. Wall-clock schedules re-evaluate
    /// at once; interval loops are unaffected.
    public func stepWallClock(by offset: Duration) async {
        await engine.stepWallClock(by: offset.virtualNanoseconds)
    }

    /// Changes the system time zone that loops on this clock see to `zone`, as replacing
    /// `/etc/localtime` would, without moving time: schedules in the system zone (calendar
    /// expressions without a zone suffix, cron without `timeZone`) re-evaluate at once and
    /// continue at their next instant in the new zone.
    ///
    /// Until the first call, loops see the machine's zone. The simulated zone concerns only
    /// the runs of loops on this clock; code outside them, e.g. a test calling
    /// `Schedule.nextFire(onOrAfter:)`, still sees the machine's zone.
    public func changeSystemTimeZone(to zone: TimeZone) async {
        await engine.changeSystemTimeZone(to: zone)
    }

    /// The system time zone loops on this clock see: the last one given to
    /// ``changeSystemTimeZone(to:)``, nil before the first call (they follow the machine's).
    public var systemTimeZone: TimeZone? {
        engine.simulatedZone.zone
    }

    /// Waits until every loop on this clock is asleep or has ended, without moving time.
    public func settle() async {
        await engine.waitUntilIdle()
    }

    /// Suspends the calling task for `duration` of simulated time; in a loop body this
    /// simulates work that takes that long.
    ///
    /// - Throws: `CancellationError` when the task is cancelled.
    public func sleep(for duration: Duration) async throws {
        let deadline = engine.now(.continuous).addingSaturated(duration.virtualNanoseconds)
        _ = try await engine.sleep(until: deadline, on: .continuous, waker: nil)
    }
}

extension VirtualEngine {
    /// A suspend: due sleepers on the continuous and wall clocks wake at the end, as a machine
    /// that resumes from suspend finds all of them expired at once.
    func settleSuspend(to target: Int64) async {
        await waitUntilIdle()
        state.withLock { $0.move(to: target, suspending: true) }
        await advance(toContinuous: target, suspending: false)
    }
}
