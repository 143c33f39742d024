import Foundation
import Testing

@testable import Loops

/// `2026-03-29T01:30:00Z` or `2026-03-29T01:30:00.25Z` (UTC only) as a `Date`, built from whole
/// seconds plus a fraction so the test's expectations do not depend on the code under test.
private func utc(_ text: String) -> Date {
    let parts = text.dropLast().split(separator: "T")
    let date = parts[0].split(separator: "-").map { Int($0)! }
    let time = parts[1].split(separator: ":")
    let secondParts = time[2].split(separator: ".")
    var components = DateComponents()
    components.calendar = Calendar(identifier: .gregorian)
    components.timeZone = TimeZone(identifier: "UTC")!
    (components.year, components.month, components.day) = (date[0], date[1], date[2])
    (components.hour, components.minute, components.second) = (Int(time[0])!, Int(time[1])!, Int(secondParts[0])!)
    var result = components.date!
    if secondParts.count == 2 {
        result += Double("0." + secondParts[1])!
    }
    return result
}

private func zone(_ identifier: String) -> TimeZone {
    TimeZone(identifier: identifier)!
}

private func time(_ hour: Int, _ minute: Int, _ second: Int = 0, nanosecond: Int = 0, zone zoneName: String = "UTC")
    throws -> TimeOfDay
{
    try TimeOfDay(hour: hour, minute: minute, second: second, nanosecond: nanosecond, timeZone: zone(zoneName))
}

private func time(_ hour: Int, _ minute: Int, _ zoneName: String) throws -> TimeOfDay {
    try time(hour, minute, 0, zone: zoneName)
}

private func time(_ hour: Int, _ minute: Int, _ second: Int, _ zoneName: String) throws -> TimeOfDay {
    try time(hour, minute, second, zone: zoneName)
}

private func fires(_ schedule: Schedule, from start: String, count: Int) -> [Date] {
    Array(schedule.fireDates(from: utc(start)).prefix(count))
}

/// The wall-clock components of `date` in `zone`, read with Foundation's calendar.
private func local(_ date: Date, _ zoneName: String) -> DateComponents {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = zone(zoneName)
    return calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .nanosecond], from: date)
}

@Suite("Times of day")
struct TimesOfDayTests {
    // Europe/Berlin 2026: CET→CEST at 01:00Z on 29 March, CEST→CET at 01:00Z on 25 October.

    @Test func berlinSpringForwardShiftsByTheGap() throws {
        let schedule = Schedule.times([try time(2, 30, "Europe/Berlin")])
        #expect(
            fires(schedule, from: "2026-03-28T12:00:00Z", count: 3) == [
                utc("2026-03-29T01:30:00Z"),  // 03:30 CEST
                utc("2026-03-30T00:30:00Z"),  // 02:30 CEST
                utc("2026-03-31T00:30:00Z"),
            ])
    }

    @Test func berlinFallBackFiresOnceAtTheFirstPass() throws {
        let schedule = Schedule.times([try time(2, 30, "Europe/Berlin")])
        #expect(
            fires(schedule, from: "2026-10-24T12:00:00Z", count: 3) == [
                utc("2026-10-25T00:30:00Z"),  // 02:30 CEST, the first pass
                utc("2026-10-26T01:30:00Z"),  // 02:30 CET
                utc("2026-10-27T01:30:00Z"),
            ])
        // Starting between the two passes does not pick up the second one.
        #expect(schedule.nextFire(onOrAfter: utc("2026-10-25T00:30:00.000001Z")) == utc("2026-10-26T01:30:00Z"))
    }

    @Test func berlinTimesNextToTheTransitions() throws {
        let schedule = Schedule.times([
            try time(1, 59, 59, "Europe/Berlin"), try time(3, 0, "Europe/Berlin"), try time(2, 0, "Europe/Berlin"),
        ])
        // 02:00 on the spring day is in the gap and moves to 03:00, which 03:00 also names: once.
        #expect(
            fires(schedule, from: "2026-03-29T00:00:00Z", count: 4) == [
                utc("2026-03-29T00:59:59Z"), utc("2026-03-29T01:00:00Z"),
                utc("2026-03-29T23:59:59Z"), utc("2026-03-30T00:00:00Z"),
            ])
        #expect(
            fires(schedule, from: "2026-10-24T23:00:00Z", count: 4) == [
                utc("2026-10-24T23:59:59Z"), utc("2026-10-25T00:00:00Z"),  // 01:59:59, 02:00 CEST
                utc("2026-10-25T02:00:00Z"),  // 03:00 CET
                utc("2026-10-26T00:59:59Z"),
            ])
    }

    // America/New_York 2026: EST→EDT at 07:00Z on 8 March, EDT→EST at 06:00Z on 1 November.

    @Test func newYorkGapAndOverlap() throws {
        let gap = Schedule.times([try time(2, 30, "America/New_York")])
        #expect(fires(gap, from: "2026-03-08T00:00:00Z", count: 2) == [
            utc("2026-03-08T07:30:00Z"), utc("2026-03-09T06:30:00Z"),
        ])
        let overlap = Schedule.times([try time(1, 30, "America/New_York")])
        #expect(fires(overlap, from: "2026-11-01T00:00:00Z", count: 2) == [
            utc("2026-11-01T05:30:00Z"), utc("2026-11-02T06:30:00Z"),
        ])
    }

    // Australia/Lord_Howe: +10:30 ↔ +11:00; 4 Oct 2026 02:00→02:30 (15:30Z), 5 Apr 2026 02:00→01:30 (15:00Z).

    @Test func lordHoweHalfHourGapAndOverlap() throws {
        let gap = Schedule.times([try time(2, 15, "Australia/Lord_Howe")])
        #expect(fires(gap, from: "2026-10-03T00:00:00Z", count: 2) == [
            utc("2026-10-03T15:45:00Z"),  // 02:45 +11
            utc("2026-10-04T15:15:00Z"),
        ])
        let overlap = Schedule.times([try time(1, 45, "Australia/Lord_Howe")])
        #expect(fires(overlap, from: "2026-04-04T00:00:00Z", count: 2) == [
            utc("2026-04-04T14:45:00Z"),  // 01:45 +11, the first pass
            utc("2026-04-05T15:15:00Z"),  // 01:45 +10:30
        ])
    }

    // Pacific/Chatham: +12:45 ↔ +13:45; 27 Sep 2026 02:45→03:45 (14:00Z), 5 Apr 2026 03:45→02:45 (14:00Z).

    @Test func chathamGapAndOverlap() throws {
        let gap = Schedule.times([try time(3, 0, "Pacific/Chatham")])
        #expect(fires(gap, from: "2026-09-26T00:00:00Z", count: 2) == [
            utc("2026-09-26T14:15:00Z"),  // 04:00 +13:45
            utc("2026-09-27T13:15:00Z"),  // 03:00 +13:45
        ])
        #expect(fires(gap, from: "2026-04-04T00:00:00Z", count: 2) == [
            utc("2026-04-04T13:15:00Z"),  // 03:00 +13:45, the first pass
            utc("2026-04-05T14:15:00Z"),  // 03:00 +12:45
        ])
    }

    @Test func kolkataHasAHalfHourOffsetAndNoDaylightSaving() throws {
        let schedule = Schedule.times([try time(9, 0, "Asia/Kolkata")])
        let dates = fires(schedule, from: "2026-01-01T00:00:00Z", count: 365)
        #expect(dates.count == 365)
        for (index, date) in dates.enumerated() {
            #expect(date == utc("2026-01-01T03:30:00Z") + Double(index) * 86_400)
        }
    }

    @Test func firstFireIsAtOrAfterTheStartAndIncludesAStartOnASlot() throws {
        let schedule = Schedule.times([try time(9, 0), try time(17, 30)])
        #expect(schedule.nextFire(onOrAfter: utc("2026-06-01T09:00:00Z")) == utc("2026-06-01T09:00:00Z"))
        #expect(schedule.nextFire(onOrAfter: utc("2026-06-01T09:00:00.000001Z")) == utc("2026-06-01T17:30:00Z"))
        #expect(schedule.nextFire(onOrAfter: utc("2026-06-01T08:59:59.999Z")) == utc("2026-06-01T09:00:00Z"))
        #expect(fires(schedule, from: "2026-06-01T09:00:00Z", count: 3) == [
            utc("2026-06-01T09:00:00Z"), utc("2026-06-01T17:30:00Z"), utc("2026-06-02T09:00:00Z"),
        ])
    }

    @Test func nanosecondsAreHonoured() throws {
        let schedule = Schedule.times([try time(12, 0, 0, nanosecond: 250_000_000)])
        let first = try #require(schedule.nextFire(onOrAfter: utc("2026-06-01T12:00:00.1Z")))
        #expect(abs(first.timeIntervalSince(utc("2026-06-01T12:00:00Z")) - 0.25) < 1e-6)
        let next = try #require(schedule.nextFire(onOrAfter: utc("2026-06-01T12:00:00.3Z")))
        #expect(abs(next.timeIntervalSince(utc("2026-06-02T12:00:00Z")) - 0.25) < 1e-6)

        let late = Schedule.times([try time(23, 59, 59, nanosecond: 999_999_999, zone: "Europe/Berlin")])
        let dates = fires(late, from: "2026-07-01T00:00:00Z", count: 2)
        #expect(dates.count == 2)
        for (date, expected) in zip(dates, ["2026-07-01T21:59:59Z", "2026-07-02T21:59:59Z"]) {
            #expect(abs(date.timeIntervalSince(utc(expected)) - 0.999_999_999) < 1e-6)
        }
    }

    @Test func eachNextIsStrictlyAfterThePrevious() throws {
        let schedule = Schedule.times([try time(0, 0), try time(0, 0, 0, nanosecond: 1_000)])
        let dates = fires(schedule, from: "2026-01-01T00:00:00Z", count: 6)
        #expect(dates.count == 6)
        for (earlier, later) in zip(dates, dates.dropFirst()) {
            #expect(earlier < later)
        }
    }

    @Test func duplicatesAreIgnored() throws {
        let schedule = Schedule.times([try time(9, 0), try time(9, 0), try time(9, 0, "Europe/Berlin")])
        guard case .times(let rule) = schedule.kind else {
            Issue.record("not a times schedule")
            return
        }
        #expect(rule.times.count == 2)
        #expect(fires(schedule, from: "2026-01-05T00:00:00Z", count: 3) == [
            utc("2026-01-05T08:00:00Z"), utc("2026-01-05T09:00:00Z"), utc("2026-01-06T08:00:00Z"),
        ])
    }

    @Test func leapDaysAndYearEnds() throws {
        let schedule = Schedule.times([try time(23, 30)])
        #expect(fires(schedule, from: "2028-02-28T23:31:00Z", count: 2) == [
            utc("2028-02-29T23:30:00Z"), utc("2028-03-01T23:30:00Z"),
        ])
        #expect(fires(schedule, from: "2027-02-28T23:31:00Z", count: 1) == [utc("2027-03-01T23:30:00Z")])
        let midnight = Schedule.times([try time(0, 0)])
        #expect(midnight.nextFire(onOrAfter: utc("2026-12-31T23:59:59.5Z")) == utc("2027-01-01T00:00:00Z"))
        // Chatham's new year begins on 31 December UTC.
        let chatham = Schedule.times([try time(0, 0, "Pacific/Chatham")])
        #expect(chatham.nextFire(onOrAfter: utc("2026-12-31T00:00:00Z")) == utc("2026-12-31T10:15:00Z"))
    }

    @Test func emptyListNeverFires() {
        #expect(Schedule.times([]).nextFire(onOrAfter: utc("2026-01-01T00:00:00Z")) == nil)
    }

    /// Over a whole year every slot of a list mixing zones fires exactly once on every local day
    /// of its zone, at its wall time (none of these times falls into a gap or an overlap).
    @Test func mixedZonesNeverStarveASlot() throws {
        let slots: [(hour: Int, minute: Int, zone: String)] = [
            (9, 0, "Europe/Berlin"), (9, 0, "America/New_York"), (9, 0, "Asia/Kolkata"),
            (23, 59, "Pacific/Chatham"), (0, 0, "UTC"), (12, 0, "Australia/Lord_Howe"), (8, 59, "Europe/Berlin"),
        ]
        let schedule = Schedule.times(try slots.map { try time($0.hour, $0.minute, $0.zone) })
        let start = utc("2026-01-01T00:00:00Z")
        let end = utc("2027-01-01T00:00:00Z")
        let dates = Array(schedule.fireDates(from: start).prefix { $0 < end })
        for (earlier, later) in zip(dates, dates.dropFirst()) {
            #expect(earlier < later)
        }
        var total = 0
        for slot in slots {
            var perDay: [String: Int] = [:]
            for date in dates {
                let parts = local(date, slot.zone)
                if parts.hour == slot.hour, parts.minute == slot.minute, parts.second == 0 {
                    perDay["\(parts.year!)-\(parts.month!)-\(parts.day!)", default: 0] += 1
                }
            }
            // Local days of the zone whose slot lies in 2026 UTC: 364 to 366 depending on the offset.
            #expect((364...366).contains(perDay.count), "\(slot): \(perDay.count) days")
            #expect(perDay.values.allSatisfy { $0 == 1 }, "\(slot) fired twice on a day")
            total += perDay.count
        }
        #expect(dates.count == total)
        // Every local day of 2026 in Berlin has its 09:00.
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone("Europe/Berlin")
        var berlinDays = Set<String>()
        for date in dates {
            let parts = calendar.dateComponents([.year, .month, .day, .hour], from: date)
            if parts.hour == 9, parts.year == 2026, let month = parts.month, let day = parts.day {
                berlinDays.insert("\(month)-\(day)")
            }
        }
        #expect(berlinDays.count == 365)
    }

    /// A slot in the gap on one day and the overlap on another still fires once on each of the
    /// 365 days of the year.
    @Test func transitionTimeFiresOncePerDayForAYear() throws {
        let slots: [(hour: Int, minute: Int, zone: String)] = [
            (2, 30, "Europe/Berlin"), (1, 30, "America/New_York"), (2, 15, "Australia/Lord_Howe"),
        ]
        for (hour, minute, name) in slots {
            let schedule = Schedule.times([try time(hour, minute, name)])
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = zone(name)
            let start = calendar.date(from: DateComponents(year: 2026, month: 1, day: 1))!
            let end = calendar.date(from: DateComponents(year: 2027, month: 1, day: 1))!
            let dates = Array(schedule.fireDates(from: start).prefix { $0 < end })
            #expect(dates.count == 365, "\(name)")
            let days = Set(dates.map { calendar.dateComponents([.month, .day], from: $0) })
            #expect(days.count == 365, "\(name)")
        }
    }
}
