/// Proleptic Gregorian date arithmetic on days since 1970-01-01 (no Foundation calendars:
/// they are slow and normalize out-of-range fields differently from C's `mktime`).
enum CivilCalendar {
    /// Days since 1970-01-01 of `year-month-day`; `month` and `day` may be out of range and
    /// carry over as in `mktime` (month 13 is January of the next year, day 0 the last of the
    /// previous month).
    static func days(year: Int, month: Int, day: Int) -> Int {
        let monthIndex = month - 1
        let carriedYear = year + floorDivide(monthIndex, 12)
        let normalizedMonth = monthIndex - floorDivide(monthIndex, 12) * 12 + 1
        return Int(WallClock.days(year: Int64(carriedYear), month: normalizedMonth, day: 1)) + (day - 1)
    }

    /// The date of a day number (inverse of ``days(year:month:day:)``).
    static func date(fromDays days: Int64) -> (year: Int, month: Int, day: Int) {
        let (year, month, day) = WallClock.civil(days: days)
        return (Int(year), month, day)
    }

    /// 0 = Monday … 6 = Sunday (1970-01-01 was a Thursday).
    static func weekday(ofDays days: Int) -> Int {
        let shifted = (days + 3) % 7
        return shifted < 0 ? shifted + 7 : shifted
    }

    static func floorDivide(_ a: Int, _ b: Int) -> Int {
        let quotient = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? quotient - 1 : quotient
    }

    static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        let quotient = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? quotient - 1 : quotient
    }
}

/// A broken-down wall time like C's `struct tm`: fields may be out of range until normalized.
struct CivilTime: Hashable, Sendable {
    var year: Int
    var month: Int
    var day: Int
    var hour: Int
    var minute: Int
    var second: Int

    /// The fields of a normalized local time given as seconds since 1970 in local terms.
    init(localSeconds: Int64) {
        let days = CivilCalendar.floorDivide(localSeconds, 86_400)
        let secondOfDay = Int(localSeconds - days * 86_400)
        let (year, month, day) = CivilCalendar.date(fromDays: days)
        self.year = year
        self.month = month
        self.day = day
        hour = secondOfDay / 3600
        minute = secondOfDay / 60 % 60
        second = secondOfDay % 60
    }

    /// The fields as seconds since 1970 in local terms, carrying out-of-range fields over.
    var localSeconds: Int64 {
        let days = Int64(CivilCalendar.days(year: year, month: month, day: day))
        return days * 86_400 + Int64(hour) * 3600 + Int64(minute) * 60 + Int64(second)
    }

    /// Midnight of the same day, as systemd resets the lower fields after a change.
    mutating func resetTime() {
        hour = 0
        minute = 0
        second = 0
    }
}
