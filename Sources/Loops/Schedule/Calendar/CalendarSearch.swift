import Foundation

/// The next instant of a ``CalendarSpec``, in two layers:
///
/// - a search in local wall time, which is systemd's field-by-field search (year, month, day,
///   weekday, hour, minute, second) run on the proleptic calendar alone: it jumps to the next
///   matching value of each field and restarts from the top whenever a change does not fit
///   (day 31 of April, minute 60);
/// - the wall time it finds is then placed in the zone with systemd.time(7)'s rules for
///   daylight saving: a local time that does not exist (a gap) is skipped, and the search goes
///   on from the end of the gap; a local time that occurs twice (an overlap) fires once, at its
///   first occurrence — or, when the search starts inside the second pass, at the second, as
///   systemd's `mktime` does.
///
/// systemd 252 runs its search through glibc's `mktime` instead, whose normalization of a time
/// inside a gap can move backwards when the change is at midnight or not on the hour; it then
/// gives up (`EDEADLK`), skips a wall time that exists, or fires a repeated one in its second
/// pass. Away from such changes the results agree; the zone sweep compares both across every
/// zone of tzdata and lists where systemd departs from its rule.
struct CalendarSearch {
    let spec: CalendarSpec

    /// systemd's safety valve (`MAX_CALENDAR_ITERATIONS`): after this many restarts it
    /// reports an error, which for us means no next instant.
    private static let maximumSteps = 1000

    /// How many wall times that do not fire (in a gap, or a repeated one already passed) the
    /// zone layer passes over before it gives up: far more than any zone's changes need.
    private static let maximumCandidates = 10_000

    private enum FieldMatch {
        case unchanged
        case changed
        case none
    }

    private enum Bounds {
        /// The fields denote a real date and time.
        case exact
        /// They did not; the time now holds the normalized (later) fields.
        case normalized
        /// Past the last year.
        case outOfRange
    }

    /// The earliest matching instant (seconds and microseconds since 1970) at or after
    /// `second`.`microsecond`, read in `zone` (`nil`: UTC); `nil` when there is none up to 2199.
    /// With `daylightSaving` (systemd's `dst` field, for a suffix naming one of the local zone's
    /// abbreviations), the search ends at the first matching instant whose daylight-saving flag
    /// differs (systemd 252 mostly stops there too, but not always: see CalendarExpressions.md).
    func next(second: Int64, microsecond: Int, zone: TimeZone?, daylightSaving: Bool? = nil) -> (second: Int64, microsecond: Int)? {
        guard let zone else {
            return nextWallTime(localSecond: second, microsecond: microsecond)
        }
        let threshold = (second, microsecond)
        var local = (second: second + WallClock.offset(zone, atUnix: second), microsecond: microsecond)
        for _ in 0..<Self.maximumCandidates {
            guard let wall = nextWallTime(localSecond: local.second, microsecond: local.microsecond) else { return nil }
            let instant: Int64
            switch WallClock.resolve(local: wall.second, in: zone) {
            case .unique(let only):
                instant = only
            case .repeated(let first, let second):
                // Only a search that starts inside the second pass can find its own time after
                // the first occurrence: it stays in that pass.
                instant = (first, wall.microsecond) >= threshold ? first : second
            case .skipped(_, let gapEnd):
                local = (gapEnd + WallClock.offset(zone, atUnix: gapEnd), 0)
                continue
            }
            // The first wall time of the other half of the year ends the schedule.
            if let daylightSaving, zone.isDaylightSavingTime(for: WallClock.date(unixSeconds: instant)) != daylightSaving {
                return nil
            }
            guard (instant, wall.microsecond) >= threshold else {
                local = Self.after(wall)
                continue
            }
            return (instant, wall.microsecond)
        }
        return nil
    }

    /// The wall time one microsecond after `time`.
    private static func after(_ time: (second: Int64, microsecond: Int)) -> (second: Int64, microsecond: Int) {
        time.microsecond + 1 < CalendarSpec.microsecondsPerSecond
            ? (time.second, time.microsecond + 1) : (time.second + 1, 0)
    }

    /// The earliest matching wall time at or after the given one, both as local seconds since
    /// 1970 (the seconds the same wall time has in UTC) and microseconds; `nil` when there is
    /// none up to 2199.
    private func nextWallTime(localSecond: Int64, microsecond startMicrosecond: Int) -> (second: Int64, microsecond: Int)? {
        var time = CivilTime(localSeconds: localSecond)
        var microsecond = startMicrosecond

        func zeroFrom(_ time: inout CivilTime, _ microsecond: inout Int) {
            time.resetTime()
            microsecond = 0
        }

        for _ in 0..<Self.maximumSteps {
            time = CivilTime(localSeconds: time.localSeconds)

            // Year: no further match, or a year that does not fit, ends the search.
            switch match(spec.years, &time.year) {
            case .none: return nil
            case .changed:
                time.month = 1
                time.day = 1
                zeroFrom(&time, &microsecond)
            case .unchanged: break
            }
            guard checkBounds(&time) == .exact else { return nil }

            // Month
            var bounds = Bounds.exact
            var result = match(spec.months, &time.month)
            if result == .changed {
                time.day = 1
                zeroFrom(&time, &microsecond)
            }
            bounds = result == .none ? .outOfRange : checkBounds(&time)
            if bounds == .outOfRange {
                time.year += 1
                time.month = 1
                time.day = 1
                zeroFrom(&time, &microsecond)
                continue
            }
            if bounds == .normalized { continue }

            // Day of month (or n-th last day)
            result = matchDay(&time)
            if result == .changed { zeroFrom(&time, &microsecond) }
            bounds = result == .none ? .outOfRange : checkBounds(&time)
            if bounds == .outOfRange {
                time.month += 1
                time.day = 1
                zeroFrom(&time, &microsecond)
                continue
            }
            if bounds == .normalized { continue }

            // Weekday
            if let weekdays = spec.weekdays {
                let days = CivilCalendar.days(year: time.year, month: time.month, day: time.day)
                if weekdays & (1 << CivilCalendar.weekday(ofDays: days)) == 0 {
                    time.day += 1
                    zeroFrom(&time, &microsecond)
                    continue
                }
            }

            // Hour
            result = match(spec.hours, &time.hour)
            if result == .changed {
                time.minute = 0
                time.second = 0
                microsecond = 0
            }
            bounds = result == .none ? .outOfRange : checkBounds(&time)
            if bounds == .outOfRange {
                time.day += 1
                zeroFrom(&time, &microsecond)
                continue
            }
            if bounds == .normalized { continue }

            // Minute
            result = match(spec.minutes, &time.minute)
            if result == .changed {
                time.second = 0
                microsecond = 0
            }
            bounds = result == .none ? .outOfRange : checkBounds(&time)
            if bounds == .outOfRange {
                time.hour += 1
                time.minute = 0
                time.second = 0
                microsecond = 0
                continue
            }
            if bounds == .normalized { continue }

            // Second, in microseconds
            var combined = time.second * CalendarSpec.microsecondsPerSecond + microsecond
            result = match(spec.microseconds, &combined)
            time.second = combined / CalendarSpec.microsecondsPerSecond
            microsecond = combined % CalendarSpec.microsecondsPerSecond
            bounds = result == .none ? .outOfRange : checkBounds(&time)
            if bounds == .outOfRange {
                time.minute += 1
                time.second = 0
                microsecond = 0
                continue
            }
            if bounds == .normalized { continue }

            return (time.localSeconds, microsecond)
        }
        return nil
    }

    /// systemd's `tm_within_bounds` on the calendar alone: whether `time` is a real date and
    /// time before 2200. When it is not (April 31, minute 60), `time` takes the normalized
    /// (later) fields, with the field just below the first changed one reset (18:80 → 19:20 →
    /// 19:00; but 23:64 → 00:04 on the next day keeps its minute, as systemd does).
    private func checkBounds(_ time: inout CivilTime) -> Bounds {
        guard time.year <= CalendarSpec.maximumYear else { return .outOfRange }
        var normalized = CivilTime(localSeconds: time.localSeconds)
        if normalized.year != time.year {
            normalized.month = 1
        } else if normalized.month != time.month {
            normalized.day = 1
        } else if normalized.day != time.day {
            normalized.hour = 0
        } else if normalized.hour != time.hour {
            normalized.minute = 0
        } else if normalized.minute != time.minute {
            normalized.second = 0
        } else if normalized.second == time.second {
            return .exact
        }
        time = normalized
        return .normalized
    }

    /// systemd's `find_matching_component`: the smallest value ≥ `value` of any component.
    private func match(_ list: [CalendarComponent]?, _ value: inout Int) -> FieldMatch {
        guard let list else { return .unchanged }
        var best: Int?
        for component in list {
            if let candidate = CalendarComponent.smallestMatch(
                start: component.start, stop: component.stop, step: component.step, atLeast: value),
               best.map({ candidate < $0 }) ?? true {
                best = candidate
            }
        }
        guard let best else { return .none }
        defer { value = best }
        return best == value ? .unchanged : .changed
    }

    /// The day field; with `~`, each component's n-th last days are turned into days of the
    /// current month first.
    private func matchDay(_ time: inout CivilTime) -> FieldMatch {
        guard spec.endOfMonth, let list = spec.days else { return match(spec.days, &time.day) }
        var best: Int?
        for component in list {
            var start = dayCountingBack(component.start, in: time)
            var stop = component.stop.map { dayCountingBack($0, in: time) } ?? -1
            if stop > 0 { swap(&start, &stop) }
            if let candidate = CalendarComponent.smallestMatch(
                start: start, stop: stop >= 0 ? stop : nil, step: component.step, atLeast: time.day),
               best.map({ candidate < $0 }) ?? true {
                best = candidate
            }
        }
        guard let best else { return .none }
        defer { time.day = best }
        return best == time.day ? .unchanged : .changed
    }

    /// The day of the month that is the `n`-th last of `time`'s month (1 = the last day), or
    /// -1 when there is no such day in that month.
    private func dayCountingBack(_ n: Int, in time: CivilTime) -> Int {
        let days = CivilCalendar.days(year: time.year, month: time.month + 1, day: 1 - n)
        let date = CivilCalendar.date(fromDays: Int64(days))
        let monthDays = CivilCalendar.days(year: time.year, month: time.month, day: 1)
        let month = CivilCalendar.date(fromDays: Int64(monthDays)).month
        return date.month == month ? date.day : -1
    }
}
