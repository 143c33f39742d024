public import Foundation
public import Loops

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What the fuzz targets share: the input as text, a zone with daylight saving, and the
/// properties every schedule's instants must have (a violation traps, so libFuzzer keeps the
/// input as a crash).
public enum Fuzz {
    /// How many instants of a schedule are checked per start: enough to cross a month and a
    /// daylight-saving change for the dense schedules, few enough for thousands of runs a second.
    public static let instantsPerStart = 8

    /// Starts on both sides of Europe/Berlin's 2026 changes (29 March, 25 October), at the
    /// epoch, and near the end of the supported range.
    public static let starts: [Date] = [
        Date(timeIntervalSince1970: 1_774_738_800),  // 2026-03-28T23:00:00Z
        Date(timeIntervalSince1970: 1_792_886_400),  // 2026-10-25T00:00:00Z
        Date(timeIntervalSince1970: 0),
        Date(timeIntervalSince1970: 7_258_118_399),  // 2199-12-31T23:59:59Z
    ]

    /// The last instant any schedule may produce is before this one (`Schedule.endOfInstants`).
    public static let endOfInstants = Date(timeIntervalSinceReferenceDate: 252_423_993_600)

    /// The fuzz input as a `String`; invalid UTF-8 becomes U+FFFD, as it would from a command line.
    public static func text(_ data: UnsafePointer<UInt8>?, _ count: Int) -> String {
        guard let data, count > 0 else { return "" }
        return String(decoding: UnsafeBufferPointer(start: data, count: count), as: UTF8.self)
    }

    /// Sets the process's zone to one with daylight saving, once, so that local-time schedules
    /// meet gaps and overlaps.
    public static func setUp() {
        _ = once
    }

    private static let once: Void = {
        setenv("TZ", "Europe/Berlin", 1)
        tzset()
    }()

    /// Checks the documented properties of `schedule`'s instants from every start: the first
    /// is at or after the start, each is later than the one before, each is before
    /// ``endOfInstants``, and `nextFire(onOrAfter:)` of an instant is the instant itself.
    ///
    /// `strictlyIncreasing: false` is for intervals, whose instants are `start + n·interval` as
    /// `Date`s: an interval below the `Date` resolution (0.000001ms is 1 ns, about 0.1 µs is
    /// the resolution in 2026) repeats an instant.
    public static func checkInstants(of schedule: Schedule, input: String, strictlyIncreasing: Bool = true) {
        for start in starts {
            var previous: Date?
            for instant in schedule.fireDates(from: start).prefix(instantsPerStart) {
                func fail(_ problem: String) -> Never {
                    fatalError("\(schedule) from \(start) (input \(input.debugDescription)): \(problem)")
                }
                if instant < start { fail("instant \(instant) is before the start") }
                if let previous, strictlyIncreasing ? instant <= previous : instant < previous {
                    fail("instant \(instant) is not after \(previous)")
                }
                if instant >= endOfInstants { fail("instant \(instant) is not before 10000-01-01") }
                if schedule.nextFire(onOrAfter: instant) != instant {
                    fail("nextFire(onOrAfter: \(instant)) is \(String(describing: schedule.nextFire(onOrAfter: instant)))")
                }
                previous = instant
            }
        }
        _ = schedule.description
    }
}
