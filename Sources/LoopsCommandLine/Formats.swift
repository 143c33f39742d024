public import Foundation
public import Loops

/// `--every` values: one or more `<number><unit>` parts, units `ms`, `s`, `m`, `h`, numbers
/// with an optional fraction: `5s`, `250ms`, `1.5m`, `1h30m`.
public enum DurationFormat {
    private static let units: [(suffix: String, nanoseconds: Int64)] = [
        ("ms", 1_000_000), ("s", 1_000_000_000), ("m", 60_000_000_000), ("h", 3_600_000_000_000),
    ]

    /// The duration, computed in whole nanoseconds from the decimal text so that `0.1s` is
    /// exactly 100 ms.
    ///
    /// - Throws: ``CommandLineError`` naming the text and what is wrong with it.
    public static func parse(_ text: String) throws -> Duration {
        func fail(_ problem: String) -> CommandLineError {
            CommandLineError("'\(text)' \(problem)")
        }
        let characters = Array(text)
        guard !characters.isEmpty else { throw fail("is empty; use a number and a unit such as 5s") }
        var index = 0
        var total: Int64 = 0
        while index < characters.count {
            var whole = ""
            var fraction = ""
            var seenPoint = false
            while index < characters.count, characters[index].isASCII,
                characters[index].isNumber || (characters[index] == "." && !seenPoint)
            {
                if characters[index] == "." {
                    seenPoint = true
                } else if seenPoint {
                    fraction.append(characters[index])
                } else {
                    whole.append(characters[index])
                }
                index += 1
            }
            guard !whole.isEmpty || !fraction.isEmpty else {
                throw fail("is not a duration: expected a number at '\(String(characters[index...]))'")
            }
            var unitText = ""
            while index < characters.count, characters[index].isLetter {
                unitText.append(characters[index])
                index += 1
            }
            guard let unit = units.first(where: { $0.suffix == unitText.lowercased() }) else {
                throw fail(
                    unitText.isEmpty
                        ? "needs a unit (ms, s, m, h) after \(whole.isEmpty ? "." : whole)\(fraction.isEmpty ? "" : "." + fraction)"
                        : "has an unknown unit '\(unitText)' (use ms, s, m, h)"
                )
            }
            guard let nanoseconds = nanoseconds(whole: whole, fraction: fraction, unit: unit.nanoseconds) else {
                throw fail("is too large")
            }
            let (sum, overflow) = total.addingReportingOverflow(nanoseconds)
            guard !overflow else { throw fail("is too large") }
            total = sum
        }
        return .nanoseconds(total)
    }

    /// `whole.fraction × unit` in nanoseconds, truncated below a nanosecond; nil on overflow.
    private static func nanoseconds(whole: String, fraction: String, unit: Int64) -> Int64? {
        let wholeValue = whole.isEmpty ? 0 : Int64(whole)
        guard let wholeValue else { return nil }
        let (scaled, overflow) = wholeValue.multipliedReportingOverflow(by: unit)
        guard !overflow else { return nil }
        // Nine fractional digits of the unit are enough: the smallest unit is 10^6 ns.
        let digits = String(fraction.prefix(9))
        guard let numerator = digits.isEmpty ? 0 : Int64(digits) else { return nil }
        var denominator: Int64 = 1
        for _ in 0..<digits.count { denominator *= 10 }
        // unit ≤ 3.6e12 and numerator < 1e9: split to stay inside Int64.
        let part = (unit / denominator) * numerator + (unit % denominator) * numerator / denominator
        let (sum, overflow2) = scaled.addingReportingOverflow(part)
        return overflow2 ? nil : sum
    }
}

/// `--times` values: `HH:MM[:SS[.frac]][@Zone]`, comma-separated; UTC when no zone is given.
public enum TimesFormat {
    /// The times of day of `text`, in the order given.
    ///
    /// - Throws: ``CommandLineError`` naming the item that is not a time or names no zone.
    public static func parse(_ text: String) throws -> [TimeOfDay] {
        let items = text.split(separator: ",", omittingEmptySubsequences: false)
        var result: [TimeOfDay] = []
        for item in items {
            let trimmed = item.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else {
                throw CommandLineError("empty time in '\(text)'")
            }
            result.append(try time(trimmed))
        }
        return result
    }

    private static func time(_ item: String) throws -> TimeOfDay {
        let parts = item.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
        var zone: TimeZone?
        if parts.count == 2 {
            let name = String(parts[1])
            guard let named = TimeZone(identifier: name), !name.isEmpty else {
                throw CommandLineError("unknown time zone '\(name)' in '\(item)'")
            }
            zone = named
        }
        let clock = parts[0].split(separator: ":", omittingEmptySubsequences: false)
        guard (2...3).contains(clock.count) else {
            throw CommandLineError("'\(item)' is not a time HH:MM[:SS[.frac]]")
        }
        func number(_ text: Substring, digits: ClosedRange<Int>) throws -> Int {
            guard digits.contains(text.count), text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(text) else {
                throw CommandLineError("'\(item)' is not a time HH:MM[:SS[.frac]]")
            }
            return value
        }
        let hour = try number(clock[0], digits: 1...2)
        let minute = try number(clock[1], digits: 2...2)
        var second = 0
        var nanosecond = 0
        if clock.count == 3 {
            let secondParts = clock[2].split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
            second = try number(secondParts[0], digits: 2...2)
            if secondParts.count == 2 {
                let fraction = secondParts[1]
                guard (1...9).contains(fraction.count) else {
                    throw CommandLineError("'\(item)': the fraction of a second takes 1 to 9 digits")
                }
                nanosecond = try number(fraction, digits: 1...9)
                for _ in fraction.count..<9 { nanosecond *= 10 }
            }
        }
        do {
            return try TimeOfDay(hour: hour, minute: minute, second: second, nanosecond: nanosecond, timeZone: zone)
        } catch let error as LoopError {
            throw CommandLineError("'\(item)': \(error.message)")
        }
    }
}

/// Instants on the command line: ISO 8601 in, `YYYY-MM-DDTHH:MM:SS.ffffffZ` out.
public enum InstantFormat {
    private static let referenceOffset: Int64 = 978_307_200

    /// 0000-01-01T00:00:00Z in seconds since 1970, the earliest instant the tool reads: before
    /// it, ``format(_:)`` would need a negative year, which is neither the documented form nor
    /// readable back as `--from`.
    private static let earliestUnix = WallClock.days(year: 0, month: 1, day: 1) * 86_400

    /// `YYYY-MM-DDTHH:MM[:SS[.frac]]` followed by `Z`, `±HH:MM`, `±HHMM` or `±HH`; a space may
    /// replace the `T`. A zone is required: the tool prints UTC and guesses nothing. `nil` also
    /// for instants before 0000-01-01T00:00:00Z (`0000-01-01T00:00:00+01:00`).
    public static func parse(_ text: String) -> Date? {
        let scalars = Array(text.utf8)
        var index = 0
        func digits(_ count: Int) -> Int? {
            guard index + count <= scalars.count else { return nil }
            var value = 0
            for byte in scalars[index..<(index + count)] {
                guard byte >= 48, byte <= 57 else { return nil }
                value = value * 10 + Int(byte - 48)
            }
            index += count
            return value
        }
        func expect(_ byte: UInt8) -> Bool {
            guard index < scalars.count, scalars[index] == byte else { return false }
            index += 1
            return true
        }
        guard let year = digits(4), expect(45), let month = digits(2), expect(45), let day = digits(2),
            expect(84) || expect(116) || expect(32),
            let hour = digits(2), expect(58), let minute = digits(2)
        else { return nil }
        var second = 0
        var fraction = 0.0
        if expect(58) {
            guard let value = digits(2) else { return nil }
            second = value
            if expect(46) || expect(44) {
                var scale = 0.1
                var any = false
                while index < scalars.count, scalars[index] >= 48, scalars[index] <= 57 {
                    fraction += Double(scalars[index] - 48) * scale
                    scale /= 10
                    index += 1
                    any = true
                }
                guard any else { return nil }
            }
        }
        var offset = 0
        if expect(90) || expect(122) {
            offset = 0
        } else if index < scalars.count, scalars[index] == 43 || scalars[index] == 45 {
            let sign = scalars[index] == 45 ? -1 : 1
            index += 1
            guard let offsetHours = digits(2) else { return nil }
            var offsetMinutes = 0
            if index < scalars.count {
                _ = expect(58)
                guard let value = digits(2) else { return nil }
                offsetMinutes = value
            }
            guard offsetHours <= 23, offsetMinutes <= 59 else { return nil }
            offset = sign * (offsetHours * 3600 + offsetMinutes * 60)
        } else {
            return nil
        }
        guard index == scalars.count, (1...12).contains(month), day >= 1,
            day <= WallClock.daysInMonth(year: Int64(year), month: month), hour <= 23, minute <= 59, second <= 60
        else { return nil }
        let unix = WallClock.days(year: Int64(year), month: month, day: day) * 86_400
            + Int64(hour * 3600 + minute * 60 + second - offset)
        guard unix >= earliestUnix else { return nil }
        return Date(timeIntervalSinceReferenceDate: Double(unix - referenceOffset) + fraction)
    }

    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, rounded to the nearest microsecond.
    public static func format(_ date: Date) -> String {
        let reference = date.timeIntervalSinceReferenceDate
        var whole = reference.rounded(.down)
        var micros = ((reference - whole) * 1e6).rounded()
        if micros >= 1e6 {
            whole += 1
            micros -= 1e6
        }
        let unix = Int64(whole) + referenceOffset
        let dayNumber = unix >= 0 ? unix / 86_400 : (unix - 86_399) / 86_400
        let secondOfDay = Int(unix - dayNumber * 86_400)
        let (year, month, day) = WallClock.civil(days: dayNumber)
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(abs(value))
            return (value < 0 ? "-" : "") + String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(Int64(month), 2))-\(pad(Int64(day), 2))T"
            + "\(pad(Int64(secondOfDay / 3600), 2)):\(pad(Int64(secondOfDay / 60 % 60), 2)):"
            + "\(pad(Int64(secondOfDay % 60), 2)).\(pad(Int64(micros), 6))Z"
    }
}
