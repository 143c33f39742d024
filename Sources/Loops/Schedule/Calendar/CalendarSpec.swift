/// A parsed, normalized calendar event: one optional list of components per field (`nil`
/// means `*`), in systemd's representation so that the search follows systemd step by step.
struct CalendarSpec: Hashable, Sendable {
    /// Bit n set = weekday n allowed (0 = Monday … 6 = Sunday); `nil` = any day.
    var weekdays: UInt8?
    var years: [CalendarComponent]?
    var months: [CalendarComponent]?
    /// Days of the month, or with ``endOfMonth`` the n-th last days.
    var days: [CalendarComponent]?
    var hours: [CalendarComponent]?
    var minutes: [CalendarComponent]?
    /// Seconds in microseconds; `*` is `0/1s`, so this field is never `nil` after parsing.
    var microseconds: [CalendarComponent]?
    /// `~` between month and day: days count back from the end of the month.
    var endOfMonth = false
    var zone: CalendarZone = .local

    static let minimumYear = 1970
    /// systemd's last year: expressions beyond it are rejected and the search stops there.
    static let maximumYear = 2199
    static let microsecondsPerSecond = 1_000_000

    /// systemd's `calendar_spec_normalize`: two-digit years, sorted lists without duplicates,
    /// ranges pulled onto their last repetition, all-or-no weekdays as "any".
    mutating func normalize() {
        if let bits = weekdays, bits == 0 || bits >= 127 { weekdays = nil }
        if endOfMonth && days == nil { endOfMonth = false }
        years = years.map { $0.map(Self.fixYear) }
        years = Self.normalizeList(years)
        months = Self.normalizeList(months)
        days = Self.normalizeList(days)
        hours = Self.normalizeList(hours)
        minutes = Self.normalizeList(minutes)
        microseconds = Self.normalizeList(microseconds)
    }

    /// 12 → 2012, 89 → 1989.
    private static func fixYear(_ component: CalendarComponent) -> CalendarComponent {
        func fix(_ value: Int) -> Int {
            if value >= 0 && value < 70 { return value + 2000 }
            if value >= 70 && value < 100 { return value + 1900 }
            return value
        }
        var result = component
        result.start = fix(result.start)
        result.stop = result.stop.map(fix)
        return result
    }

    private static func normalizeList(_ list: [CalendarComponent]?) -> [CalendarComponent]? {
        guard let list else { return nil }
        var result: [CalendarComponent] = []
        for component in list.map({ $0.normalized() }).sorted() where result.last != component {
            result.append(component)
        }
        return result
    }

    /// systemd's `calendar_spec_valid`, throwing a reason that names the offending value.
    func validate() throws(CalendarSyntaxError) {
        try Self.validate(years, field: "year", range: Self.minimumYear...Self.maximumYear, endOfMonth: false)
        try Self.validate(months, field: "month", range: 1...12, endOfMonth: false)
        try Self.validate(days, field: endOfMonth ? "last day of month" : "day", range: 1...31, endOfMonth: endOfMonth)
        try Self.validate(hours, field: "hour", range: 0...23, endOfMonth: false)
        try Self.validate(minutes, field: "minute", range: 0...59, endOfMonth: false)
        try Self.validate(microseconds, field: "second", range: 0...(60 * Self.microsecondsPerSecond - 1),
                          endOfMonth: false, inMicroseconds: true)
    }

    private static func validate(
        _ list: [CalendarComponent]?, field: String, range: ClosedRange<Int>, endOfMonth: Bool,
        inMicroseconds: Bool = false
    ) throws(CalendarSyntaxError) {
        guard let list else { return }
        let lower = range.lowerBound
        func show(_ value: Int) -> String {
            inMicroseconds ? CalendarSpec.formatSeconds(value) : String(value)
        }
        var upper = range.upperBound
        for component in list {
            // `~` counts at most 28 days back, so that every month has the day. systemd 252
            // lowers that bound by 3 again for each further list entry (a quirk we keep, so
            // that we accept exactly what systemd accepts: `~11..18,27` is rejected).
            if endOfMonth { upper -= 3 }
            let shownRange = "\(show(lower))…\(show(upper))"
            let text = Self.format(component, width: 0, inMicroseconds: inMicroseconds)
            guard component.start >= lower && component.start <= upper else {
                throw CalendarSyntaxError("\(field) \(show(component.start)) is out of range \(shownRange)")
            }
            guard component.step <= upper - lower else {
                throw CalendarSyntaxError("\(field) repetition \"\(text)\": step \(show(component.step)) is larger than the range \(shownRange)")
            }
            if let stop = component.stop {
                guard stop >= lower && stop <= upper else {
                    throw CalendarSyntaxError("\(field) \(show(stop)) is out of range \(shownRange)")
                }
                guard component.start + component.step <= stop else {
                    throw CalendarSyntaxError("\(field) range \"\(text)\" ends before it starts")
                }
            } else if endOfMonth {
                guard component.start - component.step >= lower else {
                    throw CalendarSyntaxError("\(field) repetition \"\(text)\" runs past the end of the month")
                }
            } else {
                guard component.start + component.step <= upper else {
                    throw CalendarSyntaxError("\(field) repetition \"\(text)\" never repeats within \(shownRange)")
                }
            }
        }
    }

    // MARK: - Normalized form

    /// systemd's normalized form, as `systemd-analyze calendar` prints it.
    var normalizedText: String {
        var text = ""
        if let weekdays {
            text += Self.formatWeekdays(weekdays) + " "
        }
        text += Self.formatList(years, width: 4)
        text += "-" + Self.formatList(months, width: 2)
        text += (endOfMonth ? "~" : "-") + Self.formatList(days, width: 2)
        text += " " + Self.formatList(hours, width: 2)
        text += ":" + Self.formatList(minutes, width: 2)
        text += ":" + Self.formatList(microseconds, width: 2, inMicroseconds: true)
        return text + zone.normalizedSuffix
    }

    private static let weekdayNames = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

    private static func formatWeekdays(_ bits: UInt8) -> String {
        var parts: [String] = []
        var day = 0
        while day < 7 {
            guard bits & (1 << day) != 0 else { day += 1; continue }
            var end = day
            while end + 1 < 7 && bits & (1 << (end + 1)) != 0 { end += 1 }
            switch end - day {
            case 0: parts.append(weekdayNames[day])
            case 1: parts.append(weekdayNames[day] + "," + weekdayNames[end])
            default: parts.append(weekdayNames[day] + ".." + weekdayNames[end])
            }
            day = end + 1
        }
        return parts.joined(separator: ",")
    }

    private static func formatList(_ list: [CalendarComponent]?, width: Int, inMicroseconds: Bool = false) -> String {
        guard let list else { return "*" }
        if inMicroseconds, list == [CalendarComponent(start: 0, stop: nil, step: microsecondsPerSecond)] {
            return "*"
        }
        return list.map { format($0, width: width, inMicroseconds: inMicroseconds) }.joined(separator: ",")
    }

    private static func format(_ component: CalendarComponent, width: Int, inMicroseconds: Bool) -> String {
        let unit = inMicroseconds ? microsecondsPerSecond : 1
        func padded(_ value: Int) -> String {
            let digits = String(value / unit)
            let whole = String(repeating: "0", count: max(0, width - digits.count)) + digits
            return value % unit > 0 ? whole + "." + sixDigits(value % unit) : whole
        }
        var text = padded(component.start)
        if let stop = component.stop, stop > 0 {
            text += ".." + padded(stop)
        }
        let rangeWithUnitStep = component.stop.map { $0 > 0 } == true && component.step == unit
        if component.step > 0 && !rangeWithUnitStep {
            text += "/" + String(component.step / unit)
            if component.step % unit > 0 { text += "." + sixDigits(component.step % unit) }
        }
        return text
    }

    private static func sixDigits(_ value: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    /// `1500000` → `1.5`, for messages.
    static func formatSeconds(_ microseconds: Int) -> String {
        let whole = microseconds / microsecondsPerSecond
        let fraction = microseconds % microsecondsPerSecond
        guard fraction > 0 else { return String(whole) }
        var digits = sixDigits(fraction)
        while digits.hasSuffix("0") { digits.removeLast() }
        return "\(whole).\(digits)"
    }
}
