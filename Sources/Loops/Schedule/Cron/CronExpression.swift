import Foundation

/// A parsed 5-field Vixie cron expression (`minute hour day-of-month month day-of-week`) or one
/// of its `@` shortcuts, read in a time zone.
///
/// Daylight saving follows Vixie cron: an entry whose hour field is fixed (values, lists or
/// ranges) fires at a wall time; if that time falls into a gap it fires once at the end of the
/// gap, and in an overlap once, at the first pass. An entry whose hour field has a `*` or a step
/// follows elapsed time: it has no runs in a skipped hour and runs in both passes of a repeated
/// one.
struct CronExpression: Hashable, Sendable {
    /// The expression as given.
    let text: String
    /// The zone the fields are read in; `nil` follows ``SystemTimeZone/current``.
    let timeZone: TimeZone?

    let minutes: CronField
    let hours: CronField
    let daysOfMonth: CronField
    let months: CronField
    let daysOfWeek: CronField

    /// Some date matches the month and day fields (`0 0 31 2 *` never does).
    let canMatch: Bool

    private static let shortcuts: [String: String] = [
        "@yearly": "0 0 1 1 *",
        "@annually": "0 0 1 1 *",
        "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *",
        "@midnight": "0 0 * * *",
        "@hourly": "0 * * * *",
    ]

    /// Parses `text`. As in crontab(5), fields are separated by spaces and tabs only; spaces,
    /// tabs and line ends around the expression are ignored.
    ///
    /// - Throws: ``LoopError`` `.invalidSchedule` naming the field and the bad value, e.g.
    ///   "cron minute field: 61 is out of range 0-59", or another white-space character, e.g.
    ///   "cron expression contains U+00A0 (no-break space); fields are separated by spaces and
    ///   tabs".
    init(parsing text: String, timeZone: TimeZone?) throws {
        self.text = text
        self.timeZone = timeZone
        var body = Self.trimmed(text)
        if let other = body.unicodeScalars.first(where: { $0.properties.isWhitespace && !Self.isSeparator($0) }) {
            throw LoopError(
                .invalidSchedule,
                "cron expression contains \(Self.describe(other)); fields are separated by spaces and tabs"
            )
        }
        if body.hasPrefix("@") {
            let name = body.lowercased()
            if name == "@reboot" {
                throw LoopError(
                    .invalidSchedule,
                    "cron @reboot is not supported: it means once at boot, not a recurring time"
                )
            }
            guard let expansion = Self.shortcuts[name] else {
                throw LoopError(
                    .invalidSchedule,
                    "unknown cron shortcut '\(body)' (known: @yearly, @annually, @monthly, @weekly, "
                        + "@daily, @midnight, @hourly)"
                )
            }
            body = expansion
        }
        let fields = body.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count == 5 else {
            throw LoopError(
                .invalidSchedule,
                "cron expression needs 5 fields (minute hour day-of-month month day-of-week), "
                    + "got \(fields.count) in '\(text)'"
            )
        }
        minutes = try CronField(parsing: fields[0], as: .minute)
        hours = try CronField(parsing: fields[1], as: .hour)
        daysOfMonth = try CronField(parsing: fields[2], as: .dayOfMonth)
        months = try CronField(parsing: fields[3], as: .month)
        daysOfWeek = try CronField(parsing: fields[4], as: .dayOfWeek)
        canMatch = Self.canMatch(daysOfMonth: daysOfMonth, months: months, daysOfWeek: daysOfWeek)
    }

    /// A field separator of crontab(5): a space or a tab.
    private static func isSeparator(_ scalar: Unicode.Scalar) -> Bool {
        scalar == " " || scalar == "\t"
    }

    /// `text` without the spaces, tabs and line ends (LF, CR) around it: a line read from a file
    /// may keep its newline. Other white space is left for the check that names it.
    private static func trimmed(_ text: String) -> String {
        let scalars = text.unicodeScalars
        func isTrimmed(_ scalar: Unicode.Scalar) -> Bool { isSeparator(scalar) || scalar == "\n" || scalar == "\r" }
        guard let first = scalars.firstIndex(where: { !isTrimmed($0) }),
            let last = scalars.lastIndex(where: { !isTrimmed($0) })
        else { return "" }
        return String(scalars[first...last])
    }

    /// The names of the white-space controls, which have no Unicode `Name` (only aliases).
    private static let controlNames: [UInt32: String] = [
        0x0A: "line feed", 0x0B: "line tabulation", 0x0C: "form feed", 0x0D: "carriage return", 0x85: "next line",
    ]

    /// `U+00A0 (no-break space)`: the code point and, when it has one, its name.
    private static func describe(_ scalar: Unicode.Scalar) -> String {
        let hex = String(scalar.value, radix: 16, uppercase: true)
        let code = "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        guard let name = controlNames[scalar.value] ?? scalar.properties.name?.lowercased() else { return code }
        return "\(code) (\(name))"
    }

    /// Whether the day fields ever match. With the OR rule any weekday does; with AND, every
    /// (month, day) pair meets every weekday within a 400-year Gregorian cycle, so only the
    /// pairs matter (February counted with 29 days).
    private static func canMatch(daysOfMonth: CronField, months: CronField, daysOfWeek: CronField) -> Bool {
        if !daysOfMonth.startsWithStar && !daysOfWeek.startsWithStar { return true }
        for month in 1...12 where months.contains(month) {
            let longest = WallClock.daysInMonth(year: 2000, month: month)
            if let first = daysOfMonth.first(atOrAfter: 1), first <= longest { return true }
        }
        return false
    }

    /// Whether the hour field is a wild card or stepped (the entry follows elapsed time).
    var followsElapsedTime: Bool { hours.isWildcardOrStepped }

    /// The first instant at or after `date` whose wall time matches, with the DST rules above;
    /// `nil` when no date ever matches, or none before 10000-01-01T00:00:00Z.
    func nextFire(onOrAfter date: Date) -> Date? {
        // Seconds since 2001, not 1970: `Date.strictlyLater` adds one unit in the last place of
        // this value, which a conversion to 1970-based seconds would round away.
        let reference = date.timeIntervalSinceReferenceDate
        guard canMatch, WallClock.supportedRange.contains(reference), date < Schedule.endOfInstants else { return nil }
        let zone = timeZone ?? SystemTimeZone.current
        let earliest = Int64(reference.rounded(.up)) + WallClock.referenceOffset
        let floorSeconds = Int64(reference.rounded(.down)) + WallClock.referenceOffset
        // From the day before `date` (an overlap can carry a slot of that day past `date`) to a
        // full Gregorian cycle ahead, after which every possible day has occurred.
        let startDay = WallClock.floorDivide(floorSeconds + WallClock.offset(zone, atUnix: floorSeconds), 86_400) - 1
        let lastDay = startDay + 146_097 + 2
        var day = startDay
        while let matching = nextMatchingDay(from: day, through: lastDay) {
            let (found, sawTransition) = fire(onDay: matching, earliest: earliest, zone: zone)
            if var best = found {
                // An overlap across midnight can put the next day's first pass before this one's
                // second pass.
                if sawTransition, let next = nextMatchingDay(from: matching + 1, through: matching + 1),
                    let other = fire(onDay: next, earliest: earliest, zone: zone).instant, other < best
                {
                    best = other
                }
                // No instant from year 10000 on (see ``Schedule/endOfInstants``).
                let instant = WallClock.date(unixSeconds: best)
                return instant < Schedule.endOfInstants ? instant : nil
            }
            day = matching + 1
        }
        return nil
    }

    /// The first day in `from...through` matching the month and day fields.
    private func nextMatchingDay(from start: Int64, through end: Int64) -> Int64? {
        var day = start
        while day <= end {
            let (year, month, dayOfMonth) = WallClock.civil(days: day)
            guard months.contains(month) else {
                day += Int64(WallClock.daysInMonth(year: year, month: month) - dayOfMonth + 1)
                continue
            }
            let domMatches = daysOfMonth.contains(dayOfMonth)
            let dowMatches = daysOfWeek.contains(WallClock.weekday(days: day))
            let matches =
                daysOfMonth.startsWithStar || daysOfWeek.startsWithStar
                ? domMatches && dowMatches : domMatches || dowMatches
            if matches { return day }
            day += 1
        }
        return nil
    }

    /// The earliest fire instant ≥ `earliest` among the wall times of local day `day`, and
    /// whether the zone changed its offset around that day.
    ///
    /// The instants whose wall time lies on `day` are cut into stretches of constant offset; in
    /// each the wall time runs straight, so the first matching minute is the stretch's answer.
    private func fire(onDay day: Int64, earliest: Int64, zone: TimeZone) -> (instant: Int64?, sawTransition: Bool) {
        let dayStart = day * 86_400
        let dayEnd = dayStart + 86_400
        // Every instant whose wall time is on `day` lies within these bounds.
        let windowStart = dayStart - WallClock.offsetBound
        let windowEnd = dayEnd + WallClock.offsetBound
        let transitions = WallClock.transitions(in: zone, from: windowStart, to: windowEnd)
        var stretchStart = windowStart
        var offset = transitions.first?.before ?? WallClock.offset(zone, atUnix: windowStart)
        // Wall times already passed on `day`, so a fixed-hour entry skips a second pass.
        var passedUntil = dayStart
        var best: Int64?
        func consider(_ instant: Int64) {
            if instant >= earliest, best.map({ instant < $0 }) ?? true { best = instant }
        }
        for index in 0...transitions.count {
            let stretchEnd = index < transitions.count ? transitions[index].instant : windowEnd
            if index > 0 {
                let previous = transitions[index - 1]
                offset = previous.after
                if !followsElapsedTime, previous.after > previous.before {
                    // A gap: wall times in it that match fire once, when the gap ends.
                    let low = max(stretchStart + previous.before, passedUntil, dayStart)
                    let high = min(stretchStart + previous.after, dayEnd)
                    if low < high, firstMatch(fromSecond: low - dayStart, before: high - dayStart) != nil {
                        consider(stretchStart)
                    }
                }
            }
            var low = max(stretchStart + offset, dayStart, earliest + offset)
            if !followsElapsedTime { low = max(low, passedUntil) }
            let high = min(stretchEnd + offset, dayEnd)
            if low < high, let second = firstMatch(fromSecond: low - dayStart, before: high - dayStart) {
                consider(dayStart + second - offset)
            }
            passedUntil = max(passedUntil, stretchEnd + offset)
            stretchStart = stretchEnd
        }
        return (best, !transitions.isEmpty)
    }

    /// The first second of the day in `[from, before)` that is a matching hour and minute.
    private func firstMatch(fromSecond from: Int64, before: Int64) -> Int64? {
        var minuteOfDay = Int((from + 59) / 60)
        while minuteOfDay < 1440, Int64(minuteOfDay) * 60 < before {
            let hour = minuteOfDay / 60
            if hours.contains(hour), let minute = minutes.first(atOrAfter: minuteOfDay % 60) {
                let second = Int64((hour * 60 + minute) * 60)
                return second < before ? second : nil
            }
            guard let nextHour = hours.first(atOrAfter: hour + 1), nextHour < 24 else { return nil }
            minuteOfDay = nextHour * 60
        }
        return nil
    }
}
