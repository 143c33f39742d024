import Foundation

/// Calendar arithmetic on the proleptic Gregorian calendar and time-zone offset lookups, in
/// whole seconds since 1970 ("Unix seconds").
///
/// Wall-clock schedules are computed here rather than with `Calendar.nextDate(after:matching:)`
/// because its handling of daylight-saving gaps and overlaps is a policy we cannot choose (and
/// differs between Foundation versions), and because scanning through `Calendar` is slow. A
/// local wall time is represented as "local seconds": the Unix seconds the same wall time would
/// have in UTC, so `instant = local - offset`.
package enum WallClock {
    /// Seconds between 1970-01-01 and 2001-01-01, the reference date of `Date`.
    static let referenceOffset: Int64 = 978_307_200

    /// `Date` reference seconds (since 2001) beyond which a schedule has no instants (about
    /// ±31,000 years): the civil arithmetic stays far from overflow, and `TimeZone` has no rules
    /// out there anyway.
    static let supportedRange: ClosedRange<Double> = -1e12...1e12

    /// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
    package static func days(year: Int64, month: Int, day: Int) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let m = Int64(month)
        let dayOfYear = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The civil date of a day number (Howard Hinnant's `civil_from_days`).
    package static func civil(days: Int64) -> (year: Int64, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = Int(dayOfYear - (153 * mp + 2) / 5 + 1)
        let month = Int(mp < 10 ? mp + 3 : mp - 9)
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// 0 = Sunday … 6 = Saturday (1970-01-01 was a Thursday).
    static func weekday(days: Int64) -> Int {
        Int(((days % 7) + 7 + 4) % 7)
    }

    static func isLeapYear(_ year: Int64) -> Bool {
        (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
    }

    package static func daysInMonth(year: Int64, month: Int) -> Int {
        switch month {
        case 2: return isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Floor division that rounds towards negative infinity.
    static func floorDivide(_ value: Int64, _ divisor: Int64) -> Int64 {
        let quotient = value / divisor
        return (value % divisor != 0 && (value < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }

    /// A `Date` from whole Unix seconds plus nanoseconds, computed from the reference date so no
    /// precision is lost on the way (a `Date` is a `Double` of seconds since 2001).
    static func date(unixSeconds: Int64, nanosecond: Int = 0) -> Date {
        Date(
            timeIntervalSinceReferenceDate: Double(unixSeconds - referenceOffset) + Double(nanosecond) / 1e9
        )
    }

    /// The offset from UTC in force in `zone` at an instant, in seconds.
    static func offset(_ zone: TimeZone, atUnix seconds: Int64) -> Int64 {
        Int64(zone.secondsFromGMT(for: date(unixSeconds: seconds)))
    }

    /// How a local wall time maps to instants in a zone.
    enum Resolution: Equatable {
        /// The wall time occurs once.
        case unique(Int64)
        /// The wall time occurs twice (a daylight-saving overlap): both instants, earlier first.
        case repeated(Int64, Int64)
        /// The wall time does not exist (a gap). `shifted` is the instant reading the wall time
        /// with the offset in force before the gap, i.e. the wall time moved forward by the
        /// length of the gap; `gapEnd` is the instant the gap ends (the offset change).
        case skipped(shifted: Int64, gapEnd: Int64)

        /// The first occurrence, or the shifted instant for a skipped time.
        var firstOrShifted: Int64 {
            switch self {
            case .unique(let instant), .repeated(let instant, _), .skipped(let instant, _): return instant
            }
        }
    }

    /// Offsets lie within −12 h…+14 h (tzdata has had no other since the 19th century's local
    /// mean times, which stay within ±16 h): every instant whose wall time is `local` lies within
    /// this distance of `local`.
    static let offsetBound: Int64 = 16 * 3600

    /// Resolves local seconds in `zone`: the instants whose wall time it is, found among the
    /// stretches of constant offset around it, so that changes of any size and at any time of
    /// day (midnight, 02:45, a whole skipped day) are handled alike.
    static func resolve(local: Int64, in zone: TimeZone) -> Resolution {
        let windowStart = local - offsetBound
        let windowEnd = local + offsetBound
        let changes = transitions(in: zone, from: windowStart, to: windowEnd)
        var instants: [Int64] = []
        var stretchStart = windowStart
        var offset = changes.first?.before ?? offset(zone, atUnix: windowStart)
        for index in 0...changes.count {
            let stretchEnd = index < changes.count ? changes[index].instant : windowEnd + 1
            let candidate = local - offset
            if candidate >= stretchStart, candidate < stretchEnd { instants.append(candidate) }
            if index < changes.count {
                offset = changes[index].after
                stretchStart = changes[index].instant
            }
        }
        if let first = instants.first, let last = instants.last {
            return first == last ? .unique(first) : .repeated(first, last)
        }
        // A gap: the change whose jump in wall time passes over `local`.
        for change in changes where change.instant + change.before <= local && local < change.instant + change.after {
            return .skipped(shifted: local - change.before, gapEnd: change.instant)
        }
        // Unreachable for a zone whose offsets stay within the bound; read it as UTC rather than trap.
        return .unique(local)
    }

    /// An offset change: at `instant` the offset goes from `before` to `after`.
    struct Transition: Equatable {
        let instant: Int64
        let before: Int64
        let after: Int64
    }

    /// Spacing of the offset samples in ``transitions(in:from:to:)``. Two changes that cancel
    /// out between two samples would be missed; no zone of tzdata changes its offset twice
    /// within 12 hours.
    private static let transitionSampleStep: Int64 = 12 * 3600

    /// The offset changes at instants in `(start, end]`, in order, found by bisection between
    /// sampled points: each is the first second whose offset differs from the one before it.
    static func transitions(in zone: TimeZone, from start: Int64, to end: Int64) -> [Transition] {
        var result: [Transition] = []
        var low = start
        var lowOffset = offset(zone, atUnix: start)
        while low < end {
            let high = min(low + transitionSampleStep, end)
            if offset(zone, atUnix: high) == lowOffset {
                low = high
                continue
            }
            // offset(lo) == lowOffset and offset(hi) != lowOffset throughout.
            var lo = low
            var hi = high
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2
                if offset(zone, atUnix: mid) == lowOffset { lo = mid } else { hi = mid }
            }
            let newOffset = offset(zone, atUnix: hi)
            result.append(Transition(instant: hi, before: lowOffset, after: newOffset))
            low = hi
            lowOffset = newOffset
        }
        return result
    }
}
