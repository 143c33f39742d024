import Foundation
import Testing

@testable import Loops

/// The daylight-saving changes that are not "02:00 → 03:00 on the hour" which broke schedules
/// before (issue #7): changes at midnight, at 02:45, of 30 minutes, of two hours, and the edges
/// of ordinary changes in cron. Expected instants are worked out by hand from the zone's rules
/// (comments give the local times).
@Suite("Daylight-saving changes at midnight, off the hour and of unusual size")
struct DaylightSavingEdgeTests {
    private static func instant(_ text: String) throws -> Date {
        try #require(try? Date(text, strategy: .iso8601))
    }

    private static func fires(_ schedule: Schedule, from start: String, count: Int) throws -> [Date] {
        Array(schedule.fireDates(from: try instant(start)).prefix(count))
    }

    private static func dates(_ texts: String...) throws -> [Date] {
        try texts.map(instant)
    }

    @Test("Santiago: quarter hours run on across the midnight gap instead of repeating an hour")
    func santiagoQuarterHours() throws {
        // 6 Sep 2026: 00:00 −04 (04:00Z) becomes 01:00 −03.
        let schedule = try Schedule.calendar("*-*-* *:0/15 America/Santiago")
        #expect(try Self.fires(schedule, from: "2026-09-06T03:00:00Z", count: 7) == Self.dates(
            "2026-09-06T03:00:00Z", "2026-09-06T03:15:00Z", "2026-09-06T03:30:00Z", "2026-09-06T03:45:00Z",
            "2026-09-06T04:00:00Z", "2026-09-06T04:15:00Z", "2026-09-06T04:30:00Z"))
        for every in ["*-*-* *:0/20", "*-*-* *:0/30", "hourly"] {
            let other = try Schedule.calendar("\(every) America/Santiago")
            let list = try Self.fires(other, from: "2026-09-06T02:50:00Z", count: 6)
            #expect(zip(list, list.dropFirst()).allSatisfy { $0 < $1 }, "\(every): \(list)")
            #expect(list.contains(try Self.instant("2026-09-06T04:00:00Z")), "\(every): \(list)")
        }
    }

    @Test("Cairo: the first instant is never before the start", arguments: ["*:0/15", "*:0/20", "*:0/30"])
    func cairoFirstInstantNotBeforeStart(every: String) throws {
        // 25 Apr 2025: 00:00 EET (22:00Z on the 24th) becomes 01:00 EEST.
        let schedule = try Schedule.calendar("*-*-* \(every) Africa/Cairo")
        let start = try Self.instant("2025-04-24T21:45:00Z")
        let list = Array(schedule.fireDates(from: start).prefix(4))
        #expect(list.allSatisfy { $0 >= start }, "\(list)")
        // 23:45 EET is on the quarter-hour grid only; after it comes 01:00 EEST for every grid.
        #expect((list.first == start) == (every == "*:0/15"))
        #expect(list.first { $0 > start } == (try Self.instant("2025-04-24T22:00:00Z")))
        #expect(zip(list, list.dropFirst()).allSatisfy { $0 < $1 })
    }

    @Test("Chatham: a daily 02:45 skips the missing day and goes on")
    func chathamDailyGoesOn() throws {
        // 27 Sep 2026: 02:45 +12:45 becomes 03:45 +13:45.
        let schedule = try Schedule.calendar("*-*-* 02:45 Pacific/Chatham")
        #expect(try Self.fires(schedule, from: "2026-09-25T11:15:00Z", count: 4) == Self.dates(
            "2026-09-25T14:00:00Z", "2026-09-27T13:00:00Z", "2026-09-28T13:00:00Z", "2026-09-29T13:00:00Z"))
        // 03:45 exists on the 27th (the first instant after the gap): it fires.
        #expect(try Self.fires(try Schedule.calendar("*-*-* 03:45 Pacific/Chatham"), from: "2026-09-26T12:00:00Z", count: 1)
            == Self.dates("2026-09-26T14:00:00Z"))
        // Times of day shift by the gap; fixed-hour cron fires at the end of the gap.
        let three = try TimeOfDay(hour: 3, timeZone: TimeZone(identifier: "Pacific/Chatham"))
        #expect(try Self.fires(.times([three]), from: "2026-09-26T12:00:00Z", count: 1) == Self.dates("2026-09-26T14:15:00Z"))
        let cron = try Schedule.cron("0 3 * * *", timeZone: TimeZone(identifier: "Pacific/Chatham"))
        #expect(try Self.fires(cron, from: "2026-09-26T12:00:00Z", count: 2) == Self.dates(
            "2026-09-26T14:00:00Z", "2026-09-27T13:15:00Z"))
    }

    @Test("cron at the edges of ordinary changes: Denver fall-back and Chicago spring-forward")
    func cronAtTheEdges() throws {
        // 2 Nov 2025 08:00Z: 02:00 MDT falls back to 01:00 MST; 02:00 MST (09:00Z) is not repeated.
        let denver = try Schedule.cron("0 2 * * *", timeZone: TimeZone(identifier: "America/Denver"))
        #expect(try Self.fires(denver, from: "2025-11-01T12:00:00Z", count: 2) == Self.dates(
            "2025-11-02T09:00:00Z", "2025-11-03T09:00:00Z"))
        // 9 Mar 2025 08:00Z: 02:00 CST jumps to 03:00 CDT; 02:30 fires at the end of the gap, 08:00:00Z.
        let chicago = try Schedule.cron("30 2 * * *", timeZone: TimeZone(identifier: "America/Chicago"))
        #expect(try Self.fires(chicago, from: "2025-03-09T06:00:00Z", count: 2) == Self.dates(
            "2025-03-09T08:00:00Z", "2025-03-10T07:30:00Z"))
    }

    @Test("Troll: a two-hour gap and overlap")
    func trollTwoHours() throws {
        let troll = TimeZone(identifier: "Antarctica/Troll")
        // 29 Mar 2026 01:00Z: 01:00 +00 jumps to 03:00 +02.
        let two = try TimeOfDay(hour: 2, timeZone: troll)
        #expect(try Self.fires(.times([two]), from: "2026-03-28T12:00:00Z", count: 2) == Self.dates(
            "2026-03-29T02:00:00Z", "2026-03-30T00:00:00Z"))
        #expect(try Self.fires(try Schedule.calendar("*-*-* 02:00 Antarctica/Troll"), from: "2026-03-28T12:00:00Z", count: 1)
            == Self.dates("2026-03-30T00:00:00Z"))
        #expect(try Self.fires(try Schedule.cron("0 2 * * *", timeZone: troll), from: "2026-03-28T12:00:00Z", count: 1)
            == Self.dates("2026-03-29T01:00:00Z"))
        // 25 Oct 2026 01:00Z: 03:00 +02 falls back to 01:00 +00; a wildcard hour runs both passes.
        #expect(try Self.fires(try Schedule.cron("0 * * * *", timeZone: troll), from: "2026-10-24T22:30:00Z", count: 6)
            == Self.dates("2026-10-24T23:00:00Z", "2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z",
                          "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z", "2026-10-25T04:00:00Z"))
        #expect(try Self.fires(try Schedule.cron("0 2 * * *", timeZone: troll), from: "2026-10-24T12:00:00Z", count: 2)
            == Self.dates("2026-10-25T00:00:00Z", "2026-10-26T02:00:00Z"))
    }

    @Test("a calendar search that starts in the second pass stays there; one from the first pass never goes back")
    func overlapPasses() throws {
        // Lord Howe, 5 Apr 2026 15:00Z: 02:00 +11 falls back to 01:30 +10:30.
        let schedule = try Schedule.calendar("*-*-* *:0/15 Australia/Lord_Howe")
        #expect(try Self.fires(schedule, from: "2026-04-04T14:40:00Z", count: 3) == Self.dates(
            "2026-04-04T14:45:00Z", "2026-04-04T15:30:00Z", "2026-04-04T15:45:00Z"))
        #expect(try Self.fires(schedule, from: "2026-04-04T15:05:00Z", count: 3) == Self.dates(
            "2026-04-04T15:15:00Z", "2026-04-04T15:30:00Z", "2026-04-04T15:45:00Z"))
    }

    @Test("resolving wall times: a change exactly at a sample point is found to the second")
    func transitionsToTheSecond() throws {
        let chicago = try #require(TimeZone(identifier: "America/Chicago"))
        let change: Int64 = 1_741_507_200  // 2025-03-09T08:00:00Z
        for start in [change - 43_200, change - 43_199, change - 1, change - 86_400] {
            let found = WallClock.transitions(in: chicago, from: start, to: change + 3600)
            #expect(found.map(\.instant) == [change], "from \(start)")
        }
        #expect(WallClock.resolve(local: change - 6 * 3600 + 1800, in: chicago)
            == .skipped(shifted: change + 1800, gapEnd: change))
    }
}
