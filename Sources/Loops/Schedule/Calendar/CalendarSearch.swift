import Foundation

/// The next instant of a ``CalendarSpec``: systemd's field-by-field search (year, month,
/// day, weekday, hour, minute, second), which jumps to the next matching value of each field
/// and restarts from the top whenever a change does not fit (day 31 of April, a local time in
/// a DST gap). Its results are compared with `systemd-analyze calendar` by the oracle tests.
struct CalendarSearch {
    let spec: CalendarSpec

    /// systemd's safety valve (`MAX_CALENDAR_ITERATIONS`): after this many restarts it
    /// reports an error, which for us means no next instant.
    private static let maximumSteps = 1000

    private enum FieldMatch {
        case unchanged
        case changed
        case none
    }

    private enum Bounds {
        /// The fields denote a real local time.
        case exact
        /// They did not; the time now holds the normalized (later) fields.
        case normalized
        /// Past the last year, or normalization would go backwards.
        case outOfRange
    }

    /// The earliest matching instant (seconds and microseconds since 1970) at or after
    /// `second`.`microsecond`, in `zone` (`nil`: UTC); `nil` when there is none up to 2199.
    func next(second startSecond: Int64, microsecond startMicrosecond: Int, zone: TimeZone?) -> (second: Int64, microsecond: Int)? {
        var clock = LocalClock(zone: zone, startingAt: startSecond)
        var time = clock.civilTime(at: startSecond)
        var microsecond = startMicrosecond
        let request = spec.zone.daylightSavingRequest
        var isFirstStep = true

        func zeroFrom(_ time: inout CivilTime, _ microsecond: inout Int) {
            time.resetTime()
            microsecond = 0
        }

        for _ in 0..<Self.maximumSteps {
            if !isFirstStep {
                time = clock.resolve(time).time
            }
            isFirstStep = false
            time.daylightSaving = request

            // Year: no further match, or a year that does not fit, ends the search.
            switch match(spec.years, &time.year) {
            case .none: return nil
            case .changed:
                time.month = 1
                time.day = 1
                zeroFrom(&time, &microsecond)
            case .unchanged: break
            }
            guard checkBounds(&time, &clock) == .exact else { return nil }

            // Month
            var bounds = Bounds.exact
            var result = match(spec.months, &time.month)
            if result == .changed {
                time.day = 1
                zeroFrom(&time, &microsecond)
            }
            bounds = result == .none ? .outOfRange : checkBounds(&time, &clock)
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
            bounds = result == .none ? .outOfRange : checkBounds(&time, &clock)
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
            bounds = result == .none ? .outOfRange : checkBounds(&time, &clock)
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
            bounds = result == .none ? .outOfRange : checkBounds(&time, &clock)
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
            bounds = result == .none ? .outOfRange : checkBounds(&time, &clock)
            if bounds == .outOfRange {
                time.minute += 1
                time.second = 0
                microsecond = 0
                continue
            }
            if bounds == .normalized { continue }

            return (clock.resolve(time).instant, microsecond)
        }
        return nil
    }

    /// systemd's `tm_within_bounds`: whether `time` is a real local time before 2200. When it
    /// is not but normalizes forward (April 31 → May 1, 02:30 in a gap → 03:30), `time` takes
    /// the normalized fields, with the field just below the first changed one reset (18:80 →
    /// 19:20 → 19:00; but 23:64 → 00:04 on the next day keeps its minute, as systemd does).
    private func checkBounds(_ time: inout CivilTime, _ clock: inout LocalClock) -> Bounds {
        guard time.year <= CalendarSpec.maximumYear else { return .outOfRange }
        var normalized = clock.resolve(time).time
        let order: Bool
        if normalized.year != time.year {
            order = normalized.year > time.year
            normalized.month = 1
        } else if normalized.month != time.month {
            order = normalized.month > time.month
            normalized.day = 1
        } else if normalized.day != time.day {
            order = normalized.day > time.day
            normalized.hour = 0
        } else if normalized.hour != time.hour {
            order = normalized.hour > time.hour
            normalized.minute = 0
        } else if normalized.minute != time.minute {
            order = normalized.minute > time.minute
            normalized.second = 0
        } else if normalized.second != time.second {
            order = normalized.second > time.second
        } else {
            return .exact
        }
        // Normalizing backwards (a forced DST flag) would loop: systemd gives up on the field.
        guard order else { return .outOfRange }
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
