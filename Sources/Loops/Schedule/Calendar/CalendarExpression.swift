import Foundation

/// A parsed systemd calendar event (`OnCalendar=` syntax of systemd.time(7)), with systemd's
/// rules for when it elapses, including its handling of daylight-saving changes.
///
/// Instants are whole microseconds, as in systemd; `Date` cannot hold every microsecond
/// exactly, so a fire instant is returned as the nearest `Date`, and the search threshold is
/// the smallest microsecond whose `Date` is not before the one asked about. That keeps
/// `nextFire(onOrAfter: fire)` equal to `fire`, and `strictlyLater` moves on by one µs.
struct CalendarExpression: Hashable, Sendable {
    /// The expression as written.
    let text: String
    /// The normalized spec the search runs on.
    let spec: CalendarSpec

    /// Parses `text`.
    ///
    /// - Throws: ``LoopError`` with `.invalidSchedule` naming the part that systemd would
    ///   reject as well.
    init(parsing text: String) throws {
        self.text = text
        do {
            spec = try CalendarParser.parse(text)
        } catch {
            throw LoopError(.invalidSchedule, "invalid calendar expression \"\(text)\": \(error.reason)")
        }
    }

    /// systemd's normalized form, as `systemd-analyze calendar` prints it (e.g. `daily` →
    /// `*-*-* 00:00:00`).
    var normalizedText: String { spec.normalizedText }

    /// The earliest instant at or after `date` at which the event elapses; `nil` when it never
    /// does again (a past year, an impossible date such as `*-02-30`, or beyond 2199, where
    /// systemd stops looking). A local-time expression reads the system's zone as it is now.
    func nextFire(onOrAfter date: Date) -> Date? {
        nextFire(onOrAfter: date, localZone: SystemTimeZone.current)
    }

    /// ``nextFire(onOrAfter:)`` with `localZone` standing for the system's zone (tests use it
    /// to compare with systemd run under another `TZ` without touching this process's zone).
    /// `localZone` is evaluated only for an expression in local time: reading the system's zone
    /// costs a `readlink` of `/etc/localtime`, which an expression with its own zone or `UTC`
    /// does not need.
    func nextFire(onOrAfter date: Date, localZone: @autoclosure () -> TimeZone) -> Date? {
        guard let (second, microsecond) = Self.threshold(date) else { return nil }
        let zone: TimeZone?
        switch spec.zone {
        case .local, .localAbbreviation: zone = localZone()
        case .utc: zone = nil
        case .named(let named): zone = named
        }
        let search = CalendarSearch(spec: spec)
        guard let next = search.next(
            second: second, microsecond: microsecond, zone: zone, daylightSaving: spec.zone.requiredDaylightSaving)
        else {
            return nil
        }
        return Self.date(second: next.second, microsecond: next.microsecond)
    }

    private static let secondsFrom1970To2001: Int64 = 978_307_200
    private static let microsecondsPerSecond = CalendarSpec.microsecondsPerSecond

    /// The `Date` of an instant in whole microseconds since 1970.
    static func date(second: Int64, microsecond: Int) -> Date {
        Date(timeIntervalSinceReferenceDate: TimeInterval(second - secondsFrom1970To2001)
            + TimeInterval(microsecond) / TimeInterval(microsecondsPerSecond))
    }

    /// The smallest whole-microsecond instant whose `Date` is not before `date` (1970 for
    /// earlier dates); `nil` for dates no calendar event can follow (not finite, or far
    /// beyond year 2199).
    static func threshold(_ date: Date) -> (second: Int64, microsecond: Int)? {
        let reference = date.timeIntervalSinceReferenceDate
        guard reference.isFinite, reference < 1e11 else { return nil }
        // systemd counts unsigned microseconds since 1970: earlier dates search from 1970.
        guard reference >= -TimeInterval(secondsFrom1970To2001) else { return (0, 0) }
        let whole = reference.rounded(.down)
        var second = Int64(whole) + secondsFrom1970To2001
        var microsecond = Int(((reference - whole) * TimeInterval(microsecondsPerSecond)).rounded(.up))
        func normalize() {
            if microsecond >= microsecondsPerSecond {
                second += 1
                microsecond -= microsecondsPerSecond
            } else if microsecond < 0 {
                second -= 1
                microsecond += microsecondsPerSecond
            }
        }
        normalize()
        // The arithmetic above can be off by one microsecond either way; settle it on the
        // exact `Date` comparison that callers see.
        while Self.date(second: second, microsecond: microsecond) < date {
            microsecond += 1
            normalize()
        }
        while true {
            var previousSecond = second
            var previousMicrosecond = microsecond - 1
            if previousMicrosecond < 0 {
                previousSecond -= 1
                previousMicrosecond += microsecondsPerSecond
            }
            guard Self.date(second: previousSecond, microsecond: previousMicrosecond) >= date else { break }
            second = previousSecond
            microsecond = previousMicrosecond
        }
        return (second, microsecond)
    }
}
