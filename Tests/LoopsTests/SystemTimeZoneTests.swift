import Foundation
import Testing

@testable import Loops

#if canImport(Glibc)
import Glibc
#endif

/// A temporary directory with a `localtime` link of its own, which tests re-point the way
/// `timedatectl` (rename over) or `ln -sf` (unlink, then create) do. The machine's
/// `/etc/localtime` is never touched.
final class ZoneLinkDirectory {
    let directory: String
    var localtimePath: String { directory + "/localtime" }

    init() throws {
        var template = Array((NSTemporaryDirectory() + "/swift-loops-zone-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        directory = String(cString: made)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The source that reads this directory's link and ignores `TZ`.
    var source: SystemTimeZone.Source { .system(localtimePath: localtimePath, readsTZ: false) }

    /// Points the link at `target` (a zone name is made into a zoneinfo path) by renaming a new
    /// link over the old one, as timedatectl does.
    func point(to target: String) throws {
        let temporary = directory + "/.localtime.new"
        try? FileManager.default.removeItem(atPath: temporary)
        try FileManager.default.createSymbolicLink(atPath: temporary, withDestinationPath: Self.path(of: target))
        guard rename(temporary, localtimePath) == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
    }

    /// Replaces the link by removing it and creating a new one, as `ln -sf` does.
    func unlinkAndCreate(pointingTo target: String) throws {
        removeLink()
        try FileManager.default.createSymbolicLink(atPath: localtimePath, withDestinationPath: Self.path(of: target))
    }

    func removeLink() {
        unlink(localtimePath)
    }

    private static func path(of target: String) -> String {
        target.hasPrefix("/") || target.hasPrefix(".") ? target : "/usr/share/zoneinfo/" + target
    }
}

@Suite("SystemTimeZone: the zone of schedules without one", .serialized)
struct SystemTimeZoneTests {
    @Test("follows the link it reads, each time it is re-pointed")
    func followsTheLink() throws {
        let link = try ZoneLinkDirectory()
        try SystemTimeZone.$source.withValue(link.source) {
            try link.point(to: "Europe/Berlin")
            #expect(SystemTimeZone.current.identifier == "Europe/Berlin")
            try link.point(to: "America/New_York")
            #expect(SystemTimeZone.current.identifier == "America/New_York")
            try link.unlinkAndCreate(pointingTo: "Asia/Kolkata")
            #expect(SystemTimeZone.current.identifier == "Asia/Kolkata")
        }
    }

    @Test("a missing or unresolvable link keeps the last zone read from it")
    func missingLinkKeepsLastZone() throws {
        let link = try ZoneLinkDirectory()
        try SystemTimeZone.$source.withValue(link.source) {
            try link.point(to: "Pacific/Chatham")
            #expect(SystemTimeZone.current.identifier == "Pacific/Chatham")
            // The moment between ln -sf's unlink and its symlink.
            link.removeLink()
            #expect(SystemTimeZone.current.identifier == "Pacific/Chatham")
            try link.point(to: "/tmp/not-a-zone-file")
            #expect(SystemTimeZone.current.identifier == "Pacific/Chatham")
            try link.point(to: "Australia/Lord_Howe")
            #expect(SystemTimeZone.current.identifier == "Australia/Lord_Howe")
        }
    }

    @Test("a link that never existed falls back to Foundation's zone")
    func noLinkFallsBack() throws {
        let link = try ZoneLinkDirectory()
        SystemTimeZone.$source.withValue(link.source) {
            #expect(SystemTimeZone.current.identifier == TimeZone.current.identifier)
        }
    }

    @Test(
        "relative links and tzdata's posix/ and right/ trees name the zone",
        arguments: [
            ("../usr/share/zoneinfo/Europe/Berlin", "Europe/Berlin"),
            ("/usr/share/zoneinfo/posix/Asia/Kolkata", "Asia/Kolkata"),
            ("../../usr/share/zoneinfo/right/America/New_York", "America/New_York"),
        ]
    )
    func linkForms(target: String, expected: String) throws {
        let link = try ZoneLinkDirectory()
        try SystemTimeZone.$source.withValue(link.source) {
            try link.point(to: target)
            #expect(SystemTimeZone.current.identifier == expected)
        }
    }

    @Test(
        "TZ values: a name, a name after ':', a zoneinfo path, empty for UTC",
        arguments: [
            ("TZ=Europe/Berlin", "Europe/Berlin"),
            ("TZ=:Asia/Kolkata", "Asia/Kolkata"),
            ("TZ=/usr/share/zoneinfo/America/New_York", "America/New_York"),
            ("TZ=", "UTC"),
            ("TZ=:", "UTC"),
        ]
    )
    func tzValues(key: String, expected: String) {
        // Foundation names UTC "GMT": compare zones, not identifiers.
        #expect(SystemTimeZone.resolve(key) == TimeZone(identifier: expected))
    }

    @Test(
        "TZ values the C library reads as a zone: tzdata files first, then POSIX strings without daylight saving",
        arguments: [
            // EST5EDT and CET are files of tzdata as well as POSIX-looking names: the file wins.
            ("EST5EDT", "2026-07-01T09:00:00-04:00"),
            ("CET", "2026-07-01T09:00:00+02:00"),
            (":Europe/Berlin", "2026-07-01T09:00:00+02:00"),
            ("posix/Asia/Kolkata", "2026-07-01T09:00:00+05:30"),
            ("/etc/../usr/share/zoneinfo/America/Chicago", "2026-07-01T09:00:00-05:00"),
            // POSIX offsets are positive west of Greenwich: GMT+5 is UTC−5 (not Foundation's
            // "GMT+5" identifier, UTC+5), JST-9 is UTC+9.
            ("UTC0", "2026-07-01T09:00:00+00:00"),
            ("GMT+5", "2026-07-01T09:00:00-05:00"),
            ("JST-9", "2026-07-01T09:00:00+09:00"),
            ("<+0330>-3:30", "2026-07-01T09:00:00+03:30"),
            ("", "2026-07-01T09:00:00+00:00"),
        ]
    )
    func tzValuesThatNameAZone(tz: String, nineOClock: String) throws {
        let zone = try #require(SystemTimeZone.resolve("TZ=" + tz), "TZ='\(tz)'")
        let expected = try #require(ISO8601DateFormatter().date(from: nineOClock))
        // 09:00 local on 2026-07-01 in the zone read from TZ.
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        #expect(calendar.date(from: DateComponents(year: 2026, month: 7, day: 1, hour: 9)) == expected, "TZ='\(tz)'")
        #expect(throws: Never.self) { try SystemTimeZone.check(tz: tz) }
    }

    @Test(
        "TZ values naming no zone TimeZone can hold are errors naming the value, never a silent UTC",
        arguments: [
            ("EST5EDT,M3.2.0,M11.1.0", "is a POSIX rule string"),
            ("CET-1CEST,M3.5.0,M10.5.0/3", "is a POSIX rule string"),
            ("<-03>3<-02>,M3.5.0/-2,M10.5.0/-1", "is a POSIX rule string"),
            ("AAA3BBB", "is a POSIX rule string"),
            ("EST5,M3.2.0,M11.1.0", "is a POSIX rule string"),
            ("Nowhere/Foo", "is not a time zone the system knows"),
            (":EST5EDT,M3.2.0,M11.1.0", "is not a time zone the system knows"),
            ("utc", "is not a time zone the system knows"),
            ("/nonexistent/zoneinfo/Europe/Atlantis", "names no file"),
            ("/etc/passwd", "is not a file of a zoneinfo directory"),
        ]
    )
    func unusableTZValues(tz: String, problem: String) {
        #expect(SystemTimeZone.resolve("TZ=" + tz) == nil, "TZ='\(tz)'")
        let error = #expect(throws: LoopError.self) { try SystemTimeZone.check(tz: tz) }
        #expect(error?.code == .invalidTimeZone)
        #expect(error?.message.hasPrefix("TZ='\(tz)' \(problem); ") == true, "\(String(describing: error))")
        #expect(error?.message.contains("America/New_York") == true)
    }

    @Test("a loop on a local-zone schedule is not created when TZ names no zone; other schedules are")
    func loopCreationChecksTZ() throws {
        let link = try ZoneLinkDirectory()
        try link.point(to: "Europe/Berlin")
        let rule = "EST5EDT,M3.2.0,M11.1.0"
        let local: [Schedule] = [try .cron("0 9 * * *"), try .calendar("*-*-* 09:00"), try .calendar("daily")]
        let zoned: [Schedule] = [
            try .cron("0 9 * * *", timeZone: TimeZone(identifier: "America/New_York")),
            try .calendar("*-*-* 09:00 UTC"), try .calendar("*-*-* 09:00 Europe/Berlin"),
            .times([try TimeOfDay(hour: 9)]), .every(.seconds(1)),
        ]
        func expectTZError(_ error: LoopError?, _ schedule: Schedule) {
            #expect(error?.code == .invalidTimeZone, "\(schedule)")
            #expect(error?.message.contains("TZ='\(rule)'") == true, "\(schedule): \(String(describing: error))")
        }
        try SystemTimeZone.$source.withValue(.environment(tz: rule, localtimePath: link.localtimePath)) {
            for schedule in local {
                #expect(schedule.readsSystemZone, "\(schedule)")
                expectTZError(#expect(throws: LoopError.self) { _ = try Loop(schedule: schedule) { _ in } }, schedule)
            }
            for schedule in zoned {
                #expect(!schedule.readsSystemZone, "\(schedule)")
                let loop = try Loop(schedule: schedule) { _ in }
                // Switching to a local-zone schedule is refused too, and the old one is kept.
                expectTZError(#expect(throws: LoopError.self) { try loop.changeSchedule(local[0]) }, local[0])
                #expect(loop.schedule == schedule)
            }
        }
        // The same schedules with a TZ that names a zone, or none (the link): loops are created.
        for tz in ["America/New_York", nil] {
            try SystemTimeZone.$source.withValue(.environment(tz: tz, localtimePath: link.localtimePath)) {
                for schedule in local {
                    _ = try Loop(schedule: schedule) { _ in }
                }
                #expect(SystemTimeZone.current.identifier == tz ?? "Europe/Berlin")
            }
        }
    }

    @Test("an unknown TZ or link target names no zone (the caller falls back)")
    func unknownNames() {
        #expect(SystemTimeZone.resolve("TZ=Mars/Olympus_Mons") == nil)
        #expect(SystemTimeZone.resolve("link:/tmp/localtime.copy") == nil)
        #expect(SystemTimeZone.resolve("link:") == nil)
        #expect(SystemTimeZone.resolve("file:") == nil)
    }

    @Test("cron without a zone and calendar expressions without a suffix use the zone of the moment")
    func schedulesFollowTheLink() throws {
        let link = try ZoneLinkDirectory()
        // 2026-01-01T12:00:00Z: 13:00 in Berlin, 07:00 in New York.
        let noon = Date(timeIntervalSince1970: 1_767_268_800)
        let cron = try Schedule.cron("0 9 * * *")
        let calendar = try Schedule.calendar("*-*-* 09:00:00")
        try SystemTimeZone.$source.withValue(link.source) {
            for zone in ["Europe/Berlin", "America/New_York", "Asia/Kolkata"] {
                try link.point(to: zone)
                let expected = Calendar.zoned(zone).nextDate(
                    after: noon,
                    matching: DateComponents(hour: 9, minute: 0, second: 0),
                    matchingPolicy: .nextTime
                )
                #expect(cron.nextFire(onOrAfter: noon) == expected, "\(zone)")
                #expect(calendar.nextFire(onOrAfter: noon) == expected, "\(zone)")
            }
        }
    }

    @Test("a simulated source follows its zone, and the machine's while it has none")
    func simulatedSource() {
        let simulated = SimulatedTimeZone()
        let machine = SystemTimeZone.current
        SystemTimeZone.$source.withValue(.simulated(simulated)) {
            #expect(SystemTimeZone.current == machine)
            simulated.zone = TimeZone(identifier: "Asia/Kolkata")
            #expect(SystemTimeZone.current.identifier == "Asia/Kolkata")
        }
        // Outside the task-local scope nothing changed.
        #expect(SystemTimeZone.current == machine)
    }

    @Test("invalidating forgets the last zone: a missing link then falls back to Foundation's")
    func invalidate() throws {
        let link = try ZoneLinkDirectory()
        try SystemTimeZone.$source.withValue(link.source) {
            try link.point(to: "Pacific/Chatham")
            #expect(SystemTimeZone.current.identifier == "Pacific/Chatham")
            link.removeLink()
            SystemTimeZone.invalidate()
            #expect(SystemTimeZone.current.identifier == TimeZone.current.identifier)
        }
    }
}
