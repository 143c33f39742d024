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
