public import Foundation

/// When a loop runs: a relative interval, times of day, a systemd calendar expression or a
/// cron expression.
///
/// A schedule is a plain value. ``nextFire(onOrAfter:)`` and ``fireDates(from:)`` answer when
/// a loop started at a given instant would fire if its body took no time, without running
/// anything.
public struct Schedule: Hashable, Sendable, CustomStringConvertible {
    /// Indirect: a schedule is kept twice in every loop's state and copied through every
    /// decision, and its calendar and cron cases are large (107 bytes inline; a reference to a
    /// shared box when indirect).
    indirect enum Kind: Hashable, Sendable {
        case every(IntervalRule)
        case times(TimesOfDayRule)
        case calendar(CalendarExpression)
        case cron(CronExpression)
        /// A next-fire function injected by tests (``Schedule/custom(_:nextFire:)``).
        case custom(CustomRule)
    }

    let kind: Kind

    private init(_ kind: Kind) {
        self.kind = kind
    }

    /// Every `interval`, measured from the start of the loop (iteration n at `t0 + n·interval`).
    ///
    /// The interval is validated when a ``Loop`` is created with it: a negative one throws.
    public static func every(_ interval: Duration) -> Schedule {
        .every(IntervalRule(interval: interval, seconds: interval.seconds, minutes: 0, hours: 0))
    }

    /// Every `seconds + 60·minutes + 3600·hours`, keeping the three parts as given (a loop reports
    /// them as `seconds`, `minutes`, `hours`), validated as disnake does: only the total must be
    /// ≥ 0, each part finite.
    ///
    /// - Throws: ``LoopError`` (`.invalidInterval`) naming the bad part or total.
    static func every(seconds: Double, minutes: Double, hours: Double) throws -> Schedule {
        let interval = try RelativeInterval.validate(seconds: seconds, minutes: minutes, hours: hours)
        return .every(IntervalRule(interval: interval, seconds: seconds, minutes: minutes, hours: hours))
    }

    /// The schedule of `rule`, shared with every loop of the same interval (``IntervalSchedules``).
    private static func every(_ rule: IntervalRule) -> Schedule {
        IntervalSchedules.schedule(for: rule) { Schedule(.every($0)) }
    }

    /// At each of `times` every day; duplicates are ignored and zones may be mixed.
    ///
    /// An empty list is rejected when a ``Loop`` is created with it.
    public static func times(_ times: [TimeOfDay]) -> Schedule {
        Schedule(.times(TimesOfDayRule(times)))
    }

    /// A systemd calendar event (`OnCalendar=` syntax of systemd.time(7)), such as
    /// `Mon..Fri *-*-* 02:30` or `daily`, with its rules for daylight-saving changes.
    ///
    /// - Throws: ``LoopError`` with `.invalidSchedule`, naming the part that does not parse.
    public static func calendar(_ expression: String) throws -> Schedule {
        Schedule(.calendar(try CalendarExpression(parsing: expression)))
    }

    /// A 5-field Vixie cron expression (`*/15 9-17 * * Mon-Fri`, `@daily`) read in `timeZone`;
    /// `nil` means the system's zone, followed when it changes.
    ///
    /// - Throws: ``LoopError`` with `.invalidSchedule`, naming the field that does not parse.
    public static func cron(_ expression: String, timeZone: TimeZone? = nil) throws -> Schedule {
        Schedule(.cron(try CronExpression(parsing: expression, timeZone: timeZone)))
    }

    /// A schedule whose instants come from `nextFire` (the first instant at or after a date;
    /// nil when there is none), shown as `custom <name>`. For tests that need a schedule the
    /// library never produces, such as one that goes backwards; the loop treats it as a
    /// wall-clock schedule. Two such schedules are equal only when one is a copy of the other.
    package static func custom(_ name: String, nextFire: @escaping @Sendable (Date) -> Date?) -> Schedule {
        Schedule(.custom(CustomRule(name: name, nextFire: nextFire)))
    }

    /// The first instant at or after `date` at which a loop started at `date` fires; `nil` when
    /// the schedule has no more instants. For ``every(_:)`` this is `date` itself: a loop's first
    /// iteration runs at once.
    ///
    /// Every schedule ends before 10000-01-01T00:00:00Z: there is no instant at or after it (for
    /// a `date` there, not even for ``every(_:)``), so each instant prints with a four-digit year.
    /// Calendar expressions end after 2199, as in systemd.
    ///
    /// Bad input gives `nil`, never a trap: a `date` that is NaN or infinite, and an
    /// ``every(_:)`` with a negative interval (which a ``Loop`` refuses), have no instants.
    public func nextFire(onOrAfter date: Date) -> Date? {
        guard date < Self.endOfInstants, date.timeIntervalSinceReferenceDate.isFinite else { return nil }
        switch kind {
        case .every(let rule):
            return rule.interval >= .zero ? date : nil
        case .times(let rule):
            return rule.nextFire(onOrAfter: date)
        case .calendar(let expression):
            return expression.nextFire(onOrAfter: date)
        case .cron(let expression):
            return expression.nextFire(onOrAfter: date)
        case .custom(let rule):
            return rule.nextFire(date)
        }
    }

    /// The instants at which a loop started at `start` fires if its body takes no time: the
    /// first is ``nextFire(onOrAfter:)``, each next one is the earliest strictly after the
    /// previous (for ``every(_:)``, `start` plus a whole number of intervals). Finite when the
    /// schedule ends.
    ///
    /// Every schedule ends before 10000-01-01T00:00:00Z: the sequence holds only instants up to
    /// 9999-12-31T23:59:59.999999Z and stops at the first that would be later, whatever the kind,
    /// intervals included. From 9999-12-31T23:59:58Z, every 1 s gives 23:59:58 and 23:59:59, and
    /// every 5 s gives 23:59:58 alone; from 10000-01-01T00:00:00Z or later the sequence is empty.
    ///
    /// A zero interval repeats `start` (a loop with interval 0 runs back to back); a negative
    /// interval, or a `start` that is NaN or infinite, gives an empty sequence.
    public func fireDates(from start: Date) -> some Sequence<Date> {
        let first = nextFire(onOrAfter: start)
        // For intervals, `start + n·interval` (not repeated addition), so rounding never builds up.
        let interval = self.interval?.seconds
        return sequence(state: (previous: first, index: 0)) { position -> Date? in
            guard let current = position.previous, current < Self.endOfInstants else { return nil }
            position.index += 1
            if let interval {
                position.previous = start.addingTimeInterval(Double(position.index) * interval)
            } else {
                position.previous = self.nextFire(after: current)
            }
            return current
        }
    }

    /// The earliest fire instant strictly after `date` (for ``every(_:)``: `date + interval`).
    func nextFire(after date: Date) -> Date? {
        switch kind {
        case .every(let rule):
            return date.addingTimeInterval(rule.interval.seconds)
        case .times, .calendar, .cron, .custom:
            return nextFire(onOrAfter: date.strictlyLater)
        }
    }

    /// Whether the schedule reads the wall clock (times, calendar, cron) rather than counting
    /// elapsed time.
    var isWallClock: Bool {
        if case .every = kind { return false }
        return true
    }

    /// The relative interval, for ``every(_:)``.
    var interval: Duration? {
        if case .every(let rule) = kind { return rule.interval }
        return nil
    }

    /// ``interval`` in nanoseconds (saturating), without converting it again.
    var intervalNanoseconds: Int64? {
        if case .every(let rule) = kind { return rule.nanoseconds }
        return nil
    }

    /// The interval's parts as given, for ``every(_:)``.
    var intervalRule: IntervalRule? {
        if case .every(let rule) = kind { return rule }
        return nil
    }

    /// A readable form: `every 5.0 s`, `times 09:00:00@UTC, …`, the calendar or cron text.
    public var description: String {
        switch kind {
        case .every(let rule):
            return "every \(rule.interval.seconds) s"
        case .times(let rule):
            return "times " + rule.times.map(\.description).joined(separator: ", ")
        case .calendar(let expression):
            return "calendar \(expression.text)"
        case .cron(let expression):
            return "cron \(expression.text)"
        case .custom(let rule):
            return "custom \(rule.name)"
        }
    }
}

/// The rule of ``Schedule/every(_:)``: the interval, and the `seconds`, `minutes` and `hours`
/// it was given as (disnake reports them as given: `seconds: -1, minutes: 1` stays that, not
/// 59 s). Two rules with the same interval are equal however it was written.
struct IntervalRule: Hashable, Sendable {
    let interval: Duration
    /// `interval` in nanoseconds, converted once: every tick of an interval loop needs it.
    let nanoseconds: Int64
    let seconds: Double
    let minutes: Double
    let hours: Double

    init(interval: Duration, seconds: Double, minutes: Double, hours: Double) {
        self.interval = interval
        self.nanoseconds = interval.nanoseconds
        self.seconds = seconds
        self.minutes = minutes
        self.hours = hours
    }

    static func == (lhs: IntervalRule, rhs: IntervalRule) -> Bool { lhs.interval == rhs.interval }

    func hash(into hasher: inout Hasher) { hasher.combine(interval) }
}

/// The next-fire function of a ``Schedule/custom(_:nextFire:)`` schedule. Closures cannot be
/// compared, so a rule is equal only to itself.
final class CustomRule: Hashable, Sendable {
    let name: String
    let nextFire: @Sendable (Date) -> Date?

    init(name: String, nextFire: @escaping @Sendable (Date) -> Date?) {
        self.name = name
        self.nextFire = nextFire
    }

    static func == (lhs: CustomRule, rhs: CustomRule) -> Bool { lhs === rhs }

    func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}

extension Date {
    /// The smallest representable `Date` after this one: "strictly after" for schedules,
    /// since a `Double` of seconds cannot hold a nanosecond added to today's date.
    var strictlyLater: Date {
        Date(timeIntervalSinceReferenceDate: timeIntervalSinceReferenceDate.nextUp)
    }
}

extension Duration {
    /// The duration in seconds as a `Double`.
    var seconds: Double {
        let (whole, attoseconds) = components
        return Double(whole) + Double(attoseconds) / 1e18
    }

    /// The duration in whole nanoseconds, saturating at `Int64.max`.
    var nanoseconds: Int64 {
        let (whole, attoseconds) = components
        let (scaled, overflow) = whole.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return whole < 0 ? Int64.min : Int64.max }
        let (total, overflow2) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow2 { return Int64.max }
        return total
    }
}
