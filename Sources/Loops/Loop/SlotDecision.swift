import Foundation

/// An instant a loop's iteration is scheduled for: on the loop's interval clock for relative
/// schedules (plain nanoseconds, so an interval loop's tick does no `Date` arithmetic), on the
/// wall clock for times, calendar and cron schedules.
enum ScheduledInstant: Equatable, Sendable {
    /// Nanoseconds on the loop's interval clock.
    case elapsed(Int64)
    case wall(Date)
}

/// Both clocks a decision may need, read at one moment.
struct LoopNow: Sendable {
    /// Nanoseconds on the loop's interval clock.
    let elapsed: Int64
    /// Nanoseconds since 1970 on the wall clock.
    let wall: Int64

    init(elapsed: Int64, wall: Int64) {
        self.elapsed = elapsed
        self.wall = wall
    }

    @inline(__always)
    init(_ clock: LoopClock) {
        if clock.readsKernelClocks {
            elapsed = TimerCore.now(clock.intervalClock)
            wall = TimerCore.now(.realtime)
        } else {
            let engine = clock.engine
            elapsed = engine.now(clock.intervalClock)
            wall = engine.now(.realtime)
        }
    }
}

/// The instant `t0` a run's grid starts from, read on both clocks at once: the `start()` call,
/// or the instant `beforeLoop` returned.
struct RunAnchor: Sendable {
    /// On the loop's interval clock (nanoseconds).
    let elapsed: Int64
    let wall: Date

    init(elapsed: Int64, wall: Date) {
        self.elapsed = elapsed
        self.wall = wall
    }

    init(now clock: LoopClock) {
        let now = LoopNow(clock)
        elapsed = now.elapsed
        wall = Date(nanosecondsSince1970: now.wall)
    }
}

/// Counts a loop's schedule changes, so that a run notices one. 32 bits, compared only for
/// equality: a run would mistake a changed schedule for its own only after exactly 2³²
/// changes during one of its sleeps. (After the 17-byte basis, a 64-bit version took every
/// loop 8 bytes more.)
typealias ScheduleVersion = UInt32

/// Where a run stands on its schedule: the instant its last iteration was scheduled for, or its
/// anchor before the first, with the version of the schedule that position came from (a
/// position from an older schedule means "the schedule was changed": the next slot is then
/// counted from the last slot for an interval, and from now for a wall-clock schedule).
struct SchedulePosition: Sendable {
    enum Basis: Sendable {
        case start(RunAnchor)
        case slot(ScheduledInstant)
    }

    var basis: Basis
    var version: ScheduleVersion

    /// Whether the run has had no iteration yet.
    var isStart: Bool {
        if case .start = basis { return true }
        return false
    }
}

/// A schedule's answer that was not after the last scheduled instant, which the loop skips (see
/// ``Schedule/validSlot(after:)``) and reports once.
struct RejectedSlot: Equatable, Sendable {
    let instant: Date
    /// The floor the schedule was asked from: the instant the rejected one is not after.
    let floor: Date
    /// What the loop does instead: the next valid instant, nil when the schedule is treated as ended.
    let replacement: Date?
}

/// What a run does next, decided from its schedule and position: a pure function of
/// (schedule, position, policy, now), so the rules of DESIGN §4 are testable without a clock.
struct SlotDecision: Sendable {
    enum Step: Sendable {
        /// The schedule has no more instants: the run ends normally.
        case end
        /// Due now (the first relative iteration, or an overrun resolved by the policy); `next`
        /// is the slot after it, for `nextIteration`.
        case runNow(slot: ScheduledInstant, next: ScheduledInstant?)
        /// Sleep until `deadline` on `clock`, then run the iteration scheduled for `slot`, unless
        /// the wake is so late that `following` has passed too (then decide again: an overrun).
        case sleep(deadline: Int64, clock: EngineClock, slot: ScheduledInstant, following: ScheduledInstant?)
    }

    var step: Step
    /// Answers of a misbehaving schedule that were skipped on the way; nil (usually) when
    /// none: an empty array would still cost a retain and a release on every decision.
    var rejected: [RejectedSlot]?
    /// Slots that passed without an iteration of their own: an overrun that `.skip` or `.delay`
    /// resolved with one iteration (`.burst` misses none). Wall-clock schedules count up to
    /// ``missedTicksCountLimit``.
    var missedTicks: Int64 = 0

    /// How many passed slots of a wall-clock schedule are counted at most (a forward step of
    /// the wall clock by a year on a per-second schedule would otherwise walk 31 million).
    static let missedTicksCountLimit = 10_000

    /// The instant `nextIteration` reports for this decision.
    var reportedNext: ScheduledInstant? {
        switch step {
        case .end: return nil
        case .runNow(let slot, _): return slot
        case .sleep(_, _, let slot, _): return slot
        }
    }

    /// Decides the next iteration of a run at `position` on `schedule` (version `version`).
    static func decide(
        _ schedule: Schedule,
        version: ScheduleVersion,
        after position: SchedulePosition,
        policy: MissedTickPolicy,
        intervalClock: EngineClock,
        firstIteration: FirstIteration = .atStart,
        keepsSlotsOnOverrun: Bool = false,
        now: LoopNow
    ) -> SlotDecision {
        if let interval = schedule.intervalNanoseconds {
            return decideRelative(
                interval: interval,
                after: position,
                policy: policy,
                intervalClock: intervalClock,
                firstIteration: firstIteration,
                now: now
            )
        }
        return decideWall(
            schedule,
            version: version,
            after: position,
            policy: policy,
            firstIteration: firstIteration,
            keepsSlotsOnOverrun: keepsSlotsOnOverrun,
            now: now
        )
    }

    static func decideRelative(
        interval: Int64,
        after position: SchedulePosition,
        policy: MissedTickPolicy,
        intervalClock: EngineClock,
        firstIteration: FirstIteration = .atStart,
        now: LoopNow
    ) -> SlotDecision {
        let last: Int64
        switch position.basis {
        case .start(let anchor):
            if let instant = firstIteration.instant {
                // The grid starts at `instant`, expressed on the interval clock: the slot "one
                // interval before it" is where the rules below count from.
                let first = anchor.elapsed.addingClamped(instant.nanosecondsSince1970.subtractingClamped(anchor.wall.nanosecondsSince1970))
                last = first.subtractingClamped(interval)
            } else if firstIteration.waitsOneInterval {
                last = anchor.elapsed
            } else {
                // The first iteration of an interval loop is due at the anchor: at once.
                return SlotDecision(step: .runNow(slot: .elapsed(anchor.elapsed), next: .elapsed(anchor.elapsed.addingClamped(interval))))
            }
        case .slot(.elapsed(let elapsed)):
            last = elapsed
        case .slot(.wall(let date)):
            // Switched from a wall-clock schedule: its last slot expressed on the interval clock.
            last = now.elapsed.addingClamped(date.nanosecondsSince1970.subtractingClamped(now.wall))
        }
        let next = last.addingClamped(interval)
        if next > now.elapsed {
            return SlotDecision(
                step: .sleep(deadline: next, clock: intervalClock, slot: .elapsed(next), following: .elapsed(next.addingClamped(interval)))
            )
        }
        // Overrun: the slot `next` has passed.
        let slot: Int64
        // The grid points after `next` that have come too: without an iteration of their own
        // unless the policy is `.burst`.
        let passedAfterNext = interval == 0 ? 0 : now.elapsed.subtractingClamped(next) / interval
        if interval == 0 || policy.isDelay {
            slot = now.elapsed
        } else if policy.isBurst {
            slot = next
        } else {
            // .skip: the latest grid point not after now stands for all the missed ones.
            slot = next.addingClamped(passedAfterNext * interval)
        }
        var decision = SlotDecision(step: .runNow(slot: .elapsed(slot), next: .elapsed(slot.addingClamped(interval))))
        if !policy.isBurst { decision.missedTicks = passedAfterNext }
        return decision
    }

    /// - Parameter keepsSlotsOnOverrun: after an overrun, `.skip` and `.delay` run for the latest
    ///   slot that has passed instead of for "now": a loop with a run store claims slots by their
    ///   instants, which must be the schedule's own.
    static func decideWall(
        _ schedule: Schedule,
        version: ScheduleVersion,
        after position: SchedulePosition,
        policy: MissedTickPolicy,
        firstIteration: FirstIteration = .atStart,
        keepsSlotsOnOverrun: Bool = false,
        now: LoopNow
    ) -> SlotDecision {
        var decision = SlotDecision(step: .end)
        let nowDate = Date(nanosecondsSince1970: now.wall)
        let candidate: Date?
        switch position.basis {
        case .start(let anchor) where position.version == version:
            candidate = schedule.nextFire(onOrAfter: firstIteration.instant ?? anchor.wall)
        case .slot(.wall(let last)) where position.version == version:
            candidate = decision.validSlot(of: schedule, after: last)
        default:
            // A new schedule: its next slot after now.
            candidate = decision.validSlot(of: schedule, after: nowDate)
        }
        guard let candidate else { return decision }
        let deadline = candidate.nanosecondsSince1970
        if deadline > now.wall {
            let following = decision.validSlot(of: schedule, after: candidate).map(ScheduledInstant.wall)
            decision.step = .sleep(deadline: deadline, clock: .realtime, slot: .wall(candidate), following: following)
            return decision
        }
        // Overrun or forward clock step: `.burst` runs every missed slot; `.skip` and `.delay`
        // run once now and continue with the next slot after now.
        let slot: Date
        if policy.isBurst {
            slot = candidate
        } else if keepsSlotsOnOverrun {
            // The latest slot that has passed (`now` itself included), else `candidate`.
            slot = schedule.latestSlots(1, after: candidate, before: nowDate.strictlyLater).last ?? candidate
        } else {
            slot = max(candidate, nowDate)
        }
        let next = decision.validSlot(of: schedule, after: slot).map(ScheduledInstant.wall)
        if !policy.isBurst {
            decision.missedTicks = Self.countSlots(of: schedule, after: candidate, notAfter: nowDate)
        }
        decision.step = .runNow(slot: .wall(slot), next: next)
        return decision
    }

    /// The slots of `schedule` in `(floor, limit]`, counted up to ``missedTicksCountLimit``.
    private static func countSlots(of schedule: Schedule, after floor: Date, notAfter limit: Date) -> Int64 {
        var count: Int64 = 0
        var last = floor
        while count < missedTicksCountLimit, let slot = schedule.validSlot(after: last).slot, slot <= limit {
            count += 1
            last = slot
        }
        return count
    }

    /// The schedule's next instant strictly after `floor` (``Schedule/validSlot(after:)``),
    /// noting a rejected answer for the caller to report.
    private mutating func validSlot(of schedule: Schedule, after floor: Date) -> Date? {
        let search = schedule.validSlot(after: floor)
        if let instant = search.rejected {
            rejected = (rejected ?? []) + [RejectedSlot(instant: instant, floor: floor, replacement: search.slot)]
        }
        return search.slot
    }
}

extension ScheduledInstant {
    /// How long ago the instant was at `now`, in nanoseconds; 0 when it has not come yet.
    func lateness(at now: LoopNow) -> Int64 {
        switch self {
        case .elapsed(let deadline): return max(0, now.elapsed.subtractingClamped(deadline))
        case .wall(let date): return max(0, now.wall.subtractingClamped(date.nanosecondsSince1970))
        }
    }

    /// The instant as a date, for `nextIteration`, logs and spans.
    func date(on clock: LoopClock) -> Date {
        switch self {
        case .wall(let date):
            return date
        case .elapsed(let deadline):
            let engine = clock.engine
            let now = engine.now(clock.intervalClock)
            let wall = engine.now(.realtime)
            // An interval of up to ~292 years can put the deadline past what Int64 nanoseconds
            // since 1970 hold (year 2262): then the date is computed in seconds instead.
            let (remaining, overflow) = deadline.subtractingReportingOverflow(now)
            if !overflow, case (let instant, false) = wall.addingReportingOverflow(remaining) {
                return Date(nanosecondsSince1970: instant)
            }
            return Date(nanosecondsSince1970: wall).addingTimeInterval((Double(deadline) - Double(now)) / 1e9)
        }
    }

    /// Whether the instant has come at `now`.
    func isDue(at now: LoopNow) -> Bool {
        switch self {
        case .elapsed(let deadline): return deadline <= now.elapsed
        case .wall(let date): return date.nanosecondsSince1970 <= now.wall
        }
    }
}

extension Int64 {
    /// `self + other`, saturating instead of trapping: deadlines far in the future stay far.
    func addingClamped(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        if overflow { return other > 0 ? .max : .min }
        return sum
    }

    /// `self - other`, saturating instead of trapping.
    func subtractingClamped(_ other: Int64) -> Int64 {
        let (difference, overflow) = subtractingReportingOverflow(other)
        if overflow { return other < 0 ? .max : .min }
        return difference
    }
}
