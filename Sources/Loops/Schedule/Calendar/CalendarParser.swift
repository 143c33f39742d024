/// Why a calendar expression does not parse, naming the offending part; turned into a
/// ``LoopError`` by ``CalendarExpression``.
struct CalendarSyntaxError: Error, Hashable, Sendable {
    let reason: String

    init(_ reason: String) {
        self.reason = reason
    }
}

/// The grammar of systemd.time(7) calendar events, accepting exactly what systemd 252's
/// `calendar_spec_from_string` accepts (checked against `systemd-analyze calendar`).
///
/// Works on UTF-8 bytes: the grammar is ASCII, and any other byte is simply unexpected.
struct CalendarParser {
    private let bytes: [UInt8]
    private var position = 0
    private var spec = CalendarSpec()

    /// systemd's cap on the length of one field's list.
    private static let maximumListLength = 241

    private init(_ text: Substring) {
        bytes = Array(text.utf8)
    }

    /// Parses `text` (an `OnCalendar=` value) into a normalized, validated spec.
    static func parse(_ text: String) throws(CalendarSyntaxError) -> CalendarSpec {
        let (body, zone) = try splitZone(text)
        guard !body.isEmpty else {
            throw CalendarSyntaxError(text.isEmpty ? "the expression is empty" : "a time zone needs an expression before it")
        }
        var spec: CalendarSpec
        if let shortcut = shortcut(body) {
            spec = shortcut
        } else {
            var parser = CalendarParser(body)
            try parser.parseEvent()
            spec = parser.spec
        }
        if case .utc = spec.zone {
            // `@timestamp` forces UTC whatever the suffix said.
        } else {
            spec.zone = zone
        }
        spec.normalize()
        try spec.validate()
        return spec
    }

    // MARK: - Time-zone suffix

    /// Splits off systemd's optional last word: ` UTC` (any case), one of the local zone's
    /// abbreviations, or an IANA zone name. Anything else stays in the body (and then fails).
    private static func splitZone(_ text: String) throws(CalendarSyntaxError) -> (Substring, CalendarZone) {
        let utf8 = Array(text.utf8)
        if utf8.count >= 4, utf8[(utf8.count - 4)...].elementsEqual(Array(" utc".utf8), by: sameIgnoringCase) {
            return (body(text, droppingLastBytes: 4), .utc)
        }
        let abbreviations = CalendarZone.localAbbreviations()
        for (abbreviation, daylightSaving) in [(abbreviations.standard, false), (abbreviations.daylightSaving, true)] {
            guard let abbreviation, !abbreviation.isEmpty else { continue }
            let suffix = Array(abbreviation.utf8)
            guard utf8.count > suffix.count,
                  utf8[(utf8.count - suffix.count)...].elementsEqual(suffix, by: sameIgnoringCase),
                  utf8[utf8.count - suffix.count - 1] == UInt8(ascii: " ")
            else { continue }
            return (body(text, droppingLastBytes: suffix.count + 1), .localAbbreviation(abbreviation, daylightSaving: daylightSaving))
        }
        if let space = utf8.lastIndex(of: UInt8(ascii: " ")) {
            let name = String(decoding: utf8[(space + 1)...], as: UTF8.self)
            switch CalendarZone.named(name) {
            case .success(let zone)?:
                return (body(text, droppingLastBytes: utf8.count - space), zone)
            case .failure(let error)?:
                throw error
            case nil:
                break
            }
        }
        return (Substring(text), .local)
    }

    private static func body(_ text: String, droppingLastBytes count: Int) -> Substring {
        let utf8 = Array(text.utf8)
        return Substring(String(decoding: utf8[..<(utf8.count - count)], as: UTF8.self))
    }

    private static func sameIgnoringCase(_ a: UInt8, _ b: UInt8) -> Bool {
        lowercased(a) == lowercased(b)
    }

    private static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte
    }

    // MARK: - Shortcuts

    private static func shortcut(_ body: Substring) -> CalendarSpec? {
        let zero = [CalendarComponent(start: 0, stop: nil, step: 0)]
        let first = [CalendarComponent(start: 1, stop: nil, step: 0)]
        var spec = CalendarSpec()
        spec.microseconds = zero
        switch body.lowercased() {
        case "minutely":
            break
        case "hourly":
            spec.minutes = zero
        case "daily":
            spec.hours = zero
            spec.minutes = zero
        case "monthly":
            spec.days = first
            spec.hours = zero
            spec.minutes = zero
        case "annually", "yearly", "anually":
            spec.months = first
            spec.days = first
            spec.hours = zero
            spec.minutes = zero
        case "weekly":
            spec.weekdays = 1
            spec.hours = zero
            spec.minutes = zero
        case "quarterly":
            spec.months = [1, 4, 7, 10].map { CalendarComponent(start: $0, stop: nil, step: 0) }
            spec.days = first
            spec.hours = zero
            spec.minutes = zero
        case "biannually", "bi-annually", "semiannually", "semi-annually":
            spec.months = [1, 7].map { CalendarComponent(start: $0, stop: nil, step: 0) }
            spec.days = first
            spec.hours = zero
            spec.minutes = zero
        default:
            return nil
        }
        return spec
    }

    // MARK: - Event: [weekdays] [date] [time]

    private var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    private func peek(_ offset: Int) -> UInt8? {
        position + offset < bytes.count ? bytes[position + offset] : nil
    }

    private var atEnd: Bool { position >= bytes.count }

    /// The unparsed rest, for messages.
    private var rest: String {
        String(decoding: bytes[min(position, bytes.count)...], as: UTF8.self)
    }

    private func unexpected(_ what: String) -> CalendarSyntaxError {
        atEnd ? CalendarSyntaxError("\(what): the expression ends too early")
            : CalendarSyntaxError("\(what): unexpected \"\(rest)\"")
    }

    private mutating func skipSpaces() {
        while current == UInt8(ascii: " ") { position += 1 }
    }

    private mutating func parseEvent() throws(CalendarSyntaxError) {
        try parseWeekdays()
        let timestampGiven = try parseDate()
        if !timestampGiven {
            try parseTime()
        }
        guard atEnd else {
            throw CalendarSyntaxError("unexpected \"\(rest)\" after the time")
        }
    }

    private static let weekdayTable: [(name: String, number: Int)] = [
        ("monday", 0), ("mon", 0), ("tuesday", 1), ("tue", 1), ("wednesday", 2), ("wed", 2),
        ("thursday", 3), ("thu", 3), ("friday", 4), ("fri", 4), ("saturday", 5), ("sat", 5),
        ("sunday", 6), ("sun", 6),
    ]

    /// Which weekday name starts at the current position, if any (longest names first).
    private func weekdayHere() -> (length: Int, number: Int)? {
        for entry in Self.weekdayTable {
            let name = Array(entry.name.utf8)
            guard position + name.count <= bytes.count,
                  bytes[position..<(position + name.count)].elementsEqual(name, by: Self.sameIgnoringCase)
            else { continue }
            return (name.count, entry.number)
        }
        return nil
    }

    private mutating func parseWeekdays() throws(CalendarSyntaxError) {
        var bits: UInt8 = 0
        var rangeStart: Int?
        var first = true
        while true {
            guard let (length, number) = weekdayHere() else {
                if first { return }
                throw unexpected("expected a weekday name")
            }
            let nameText = String(decoding: bytes[position..<(position + length)], as: UTF8.self)
            if let next = peek(length), ![UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: ","), UInt8(ascii: " ")].contains(next) {
                throw CalendarSyntaxError("\"\(rest.prefix { $0 != " " && $0 != "," })\" is not a weekday (after \"\(nameText)\")")
            }
            bits |= 1 << number
            if let start = rangeStart {
                guard start <= number else {
                    throw CalendarSyntaxError("weekday range ending in \"\(nameText)\" runs backwards (ranges go from Mon to Sun)")
                }
                for day in start..<number { bits |= 1 << day }
            }
            position += length
            spec.weekdays = bits
            guard let separator = current else { return }
            if separator == UInt8(ascii: " ") {
                skipSpaces()
                return
            }
            if separator == UInt8(ascii: ".") {
                guard rangeStart == nil, peek(1) == UInt8(ascii: ".") else {
                    throw unexpected("bad weekday range after \"\(nameText)\"")
                }
                rangeStart = number
                position += 2
            } else if separator == UInt8(ascii: "-") {
                guard rangeStart == nil else {
                    throw unexpected("bad weekday range after \"\(nameText)\"")
                }
                rangeStart = number
                position += 1
            } else if separator == UInt8(ascii: ",") {
                rangeStart = nil
                position += 1
            }
            if atEnd || current == UInt8(ascii: " ") {
                skipSpaces()
                guard rangeStart == nil else {
                    throw CalendarSyntaxError("weekday range starting at \"\(nameText)\" has no end")
                }
                return
            }
            first = false
        }
    }

    /// Parses `[[Y-]M-D]` or `@seconds`; returns true for `@seconds`, which is a whole event.
    private mutating func parseDate() throws(CalendarSyntaxError) -> Bool {
        guard !atEnd else { return false }
        if current == UInt8(ascii: "@") {
            position += 1
            try parseTimestamp()
            return true
        }
        let start = position
        let first = try parseList(field: "date or hour", microseconds: false)
        if atEnd || current == UInt8(ascii: ":") {
            // It was the hour of a time.
            position = start
            return false
        }
        if current == UInt8(ascii: "~") {
            spec.endOfMonth = true
        } else if current != UInt8(ascii: "-") {
            throw unexpected("expected \"-\" or \"~\" in the date")
        }
        position += 1
        let second = try parseList(field: "month or day", microseconds: false)
        if atEnd || current == UInt8(ascii: " ") {
            skipSpaces()
            spec.months = first
            spec.days = second
            return false
        }
        if spec.endOfMonth {
            throw unexpected("\"~\" must come between month and day")
        }
        if current == UInt8(ascii: "~") {
            spec.endOfMonth = true
        } else if current != UInt8(ascii: "-") {
            throw unexpected("expected \"-\" or \"~\" in the date")
        }
        position += 1
        let third = try parseList(field: "day", microseconds: false)
        guard atEnd || current == UInt8(ascii: " ") else {
            throw unexpected("expected a space after the date")
        }
        skipSpaces()
        spec.years = first
        spec.months = second
        spec.days = third
        return false
    }

    /// `@seconds` since the epoch, read like C's `strtoul` (spaces and a sign allowed), as
    /// one fixed UTC instant.
    private mutating func parseTimestamp() throws(CalendarSyntaxError) {
        let textStart = position
        while let byte = current, byte == 0x20 || (byte >= 0x09 && byte <= 0x0D) { position += 1 }
        var negative = false
        if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") {
            negative = current == UInt8(ascii: "-")
            position += 1
        }
        var value: UInt64 = 0
        var digits = 0
        var overflow = false
        while let byte = current, byte >= 0x30 && byte <= 0x39 {
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times.addingReportingOverflow(UInt64(byte - 0x30))
            overflow = overflow || o1 || o2
            value = sum
            digits += 1
            position += 1
        }
        let shown = String(decoding: bytes[textStart..<position], as: UTF8.self)
        guard digits > 0 else { throw unexpected("expected seconds after \"@\"") }
        guard !overflow else { throw CalendarSyntaxError("timestamp @\(shown) is too large") }
        // strtoul negates in unsigned arithmetic; as a time_t that is a date before 1970.
        let seconds = negative ? -Int64(bitPattern: value) : Int64(bitPattern: value)
        guard seconds >= 0 else {
            throw CalendarSyntaxError("timestamp @\(shown) is before 1970")
        }
        let days = seconds / 86_400
        let (year, month, day) = CivilCalendar.date(fromDays: days)
        let secondOfDay = Int(seconds % 86_400)
        guard year <= CalendarSpec.maximumYear else {
            throw CalendarSyntaxError("timestamp @\(shown) is after \(CalendarSpec.maximumYear)")
        }
        func single(_ value: Int) -> [CalendarComponent] { [CalendarComponent(start: value, stop: nil, step: 0)] }
        spec.years = single(year)
        spec.months = single(month)
        spec.days = single(day)
        spec.hours = single(secondOfDay / 3600)
        spec.minutes = single(secondOfDay / 60 % 60)
        spec.microseconds = single(secondOfDay % 60 * CalendarSpec.microsecondsPerSecond)
        spec.zone = .utc
    }

    /// Parses `H:M[:S]`, or nothing (midnight).
    private mutating func parseTime() throws(CalendarSyntaxError) {
        let zero = [CalendarComponent(start: 0, stop: nil, step: 0)]
        guard !atEnd else {
            spec.hours = zero
            spec.minutes = zero
            spec.microseconds = zero
            return
        }
        let hours = try parseList(field: "hour", microseconds: false)
        guard current == UInt8(ascii: ":") else {
            throw unexpected("expected \":\" after the hour")
        }
        position += 1
        let minutes = try parseList(field: "minute", microseconds: false)
        var seconds = zero
        if !atEnd {
            guard current == UInt8(ascii: ":") else {
                throw unexpected("expected \":\" after the minute")
            }
            position += 1
            seconds = try parseList(field: "second", microseconds: true) ?? []
            guard atEnd else {
                throw unexpected("expected the end after the seconds")
            }
        }
        spec.hours = hours
        spec.minutes = minutes
        spec.microseconds = seconds
    }

    // MARK: - Lists and components

    /// Parses `*` or a comma-separated list; `nil` means `*` (for seconds, `*` is `0/1`).
    private mutating func parseList(field: String, microseconds: Bool) throws(CalendarSyntaxError) -> [CalendarComponent]? {
        if current == UInt8(ascii: "*") {
            position += 1
            return microseconds ? [CalendarComponent(start: 0, stop: nil, step: CalendarSpec.microsecondsPerSecond)] : nil
        }
        var list: [CalendarComponent] = []
        while true {
            guard list.count < Self.maximumListLength else {
                throw CalendarSyntaxError("the \(field) list has more than \(Self.maximumListLength) entries")
            }
            list.append(try parseComponent(field: field, microseconds: microseconds))
            guard current == UInt8(ascii: ",") else { return list }
            position += 1
        }
    }

    private mutating func parseComponent(field: String, microseconds: Bool) throws(CalendarSyntaxError) -> CalendarComponent {
        let componentStart = position
        let start = try parseNumber(field: field, microseconds: microseconds)
        var stop: Int?
        var step = 0
        var stepGiven = false
        if current == UInt8(ascii: "."), peek(1) == UInt8(ascii: ".") {
            position += 2
            stop = try parseNumber(field: field, microseconds: microseconds)
            step = microseconds ? CalendarSpec.microsecondsPerSecond : 1
        }
        if current == UInt8(ascii: "/") {
            position += 1
            step = try parseNumber(field: field, microseconds: microseconds)
            stepGiven = true
            guard step > 0 else {
                throw CalendarSyntaxError("\(field) \"\(componentText(from: componentStart))\": the repetition must be positive")
            }
        }
        if let byte = current, ![UInt8(ascii: " "), UInt8(ascii: ","), UInt8(ascii: "-"), UInt8(ascii: "~"), UInt8(ascii: ":")].contains(byte) {
            throw unexpected("bad \(field) \"\(componentText(from: componentStart))\"")
        }
        if !stepGiven, microseconds, let stop, start + step > stop {
            // A range of seconds repeats every second unless told otherwise, so it must span one.
            throw CalendarSyntaxError("second range \"\(componentText(from: componentStart))\" is shorter than its one-second step")
        }
        return CalendarComponent(start: start, stop: stop, step: step)
    }

    private func componentText(from start: Int) -> String {
        String(decoding: bytes[start..<min(position, bytes.count)], as: UTF8.self)
    }

    /// A decimal number; for seconds with an optional fraction rounded to microseconds.
    private mutating func parseNumber(field: String, microseconds: Bool) throws(CalendarSyntaxError) -> Int {
        let numberStart = position
        guard let first = current, first >= 0x30 && first <= 0x39 else {
            throw unexpected("expected a number or \"*\" for the \(field)")
        }
        var value = 0
        var tooLarge = false
        while let byte = current, byte >= 0x30 && byte <= 0x39 {
            if !tooLarge {
                let (times, o1) = value.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times.addingReportingOverflow(Int(byte - 0x30))
                tooLarge = o1 || o2 || sum > Int(Int32.max)
                value = sum
            }
            position += 1
        }
        guard !tooLarge else {
            throw CalendarSyntaxError("\(field) \(componentText(from: numberStart)) is too large")
        }
        guard microseconds else { return value }
        value *= CalendarSpec.microsecondsPerSecond
        if current == UInt8(ascii: "."), peek(1) != UInt8(ascii: ".") {
            position += 1
            var fraction = 0
            var digits = 0
            var roundUp = false
            while let byte = current, byte >= 0x30 && byte <= 0x39 {
                if digits < 6 {
                    fraction = fraction * 10 + Int(byte - 0x30)
                } else if digits == 6 {
                    roundUp = byte >= 0x35
                }
                digits += 1
                position += 1
            }
            guard digits > 0 else {
                throw unexpected("expected digits after the decimal point of the \(field)")
            }
            for _ in digits..<max(digits, 6) { fraction *= 10 }
            if roundUp { fraction += 1 }
            value += fraction
        }
        guard value <= Int(Int32.max) else {
            throw CalendarSyntaxError("\(field) \(componentText(from: numberStart)) is too large")
        }
        return value
    }
}
