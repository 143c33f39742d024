public import Foundation

/// A wall-clock time of day in a time zone: the counterpart of Python's
/// `datetime.time(h, m, s, tzinfo=)`. Without a zone it means UTC, as in disnake.
public struct TimeOfDay: Hashable, Sendable, CustomStringConvertible {
    /// 0...23.
    public let hour: Int
    /// 0...59.
    public let minute: Int
    /// 0...59.
    public let second: Int
    /// 0..<1_000_000_000.
    public let nanosecond: Int
    /// The zone the time is read in; UTC when none was given.
    public let timeZone: TimeZone

    /// Creates a time of day, throwing a ``LoopError`` (`.invalidTimeOfDay`) that names the
    /// component when one is out of range.
    public init(
        hour: Int,
        minute: Int = 0,
        second: Int = 0,
        nanosecond: Int = 0,
        timeZone: TimeZone? = nil
    ) throws {
        try Self.check("hour", hour, in: 0...23)
        try Self.check("minute", minute, in: 0...59)
        try Self.check("second", second, in: 0...59)
        try Self.check("nanosecond", nanosecond, in: 0...999_999_999)
        self.hour = hour
        self.minute = minute
        self.second = second
        self.nanosecond = nanosecond
        self.timeZone = timeZone ?? TimeZone(identifier: "UTC")!
    }

    /// `HH:MM:SS[.fffffffff]@Zone`, e.g. `09:00:00@Europe/Berlin`.
    public var description: String {
        var text = Self.twoDigits(hour) + ":" + Self.twoDigits(minute) + ":" + Self.twoDigits(second)
        if nanosecond != 0 {
            var fraction = String(nanosecond)
            fraction = String(repeating: "0", count: 9 - fraction.count) + fraction
            while fraction.hasSuffix("0") { fraction.removeLast() }
            text += "." + fraction
        }
        return text + "@" + Self.name(of: timeZone)
    }

    /// The zone's identifier, with Foundation's `GMT` for UTC spelled `UTC`.
    static func name(of zone: TimeZone) -> String {
        let utcNames: Set<String> = ["GMT", "UTC", "Etc/UTC", "Etc/GMT", "Etc/Universal", "Etc/Zulu"]
        return utcNames.contains(zone.identifier) ? "UTC" : zone.identifier
    }

    private static func twoDigits(_ value: Int) -> String {
        value < 10 ? "0\(value)" : "\(value)"
    }

    private static func check(_ name: String, _ value: Int, in range: ClosedRange<Int>) throws {
        guard range.contains(value) else {
            throw LoopError(
                .invalidTimeOfDay,
                "\(name) must be in \(range.lowerBound)...\(range.upperBound), got \(value)"
            )
        }
    }
}
