import Foundation
import Testing

@testable import Loops

/// 10000-01-01T00:00:00Z (253402300799 is 9999-12-31T23:59:59Z, the largest Unix time with a
/// four-digit year).
private let year10000 = Date(timeIntervalSince1970: 253_402_300_800)

/// `9999-12-31T23:59:58Z` and the like, from Unix seconds of 9999-12-31T00:00:00Z.
private func lastDay(_ hour: Int, _ minute: Int, _ second: Double = 0) -> Date {
    Date(timeIntervalSince1970: 253_402_214_400 + Double(hour * 3600 + minute * 60) + second)
}

private func utcTime(_ hour: Int, _ minute: Int) throws -> TimeOfDay {
    try TimeOfDay(hour: hour, minute: minute, timeZone: TimeZone(identifier: "UTC"))
}

/// Every schedule ends before 10000-01-01T00:00:00Z, so each instant prints as
/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` with a four-digit year.
@Suite("Schedules end before the year 10000")
struct ScheduleEndTests {
    @Test func theEndIs10000_01_01() {
        #expect(Schedule.endOfInstants == year10000)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        #expect(calendar.dateComponents([.year, .month, .day, .hour], from: year10000) == DateComponents(year: 10000, month: 1, day: 1, hour: 0))
    }

    @Test func intervalsStopAtTheLastInstantBeforeTheEnd() {
        let fiveSeconds = Schedule.every(.seconds(5))
        #expect(Array(fiveSeconds.fireDates(from: lastDay(23, 59, 58))) == [lastDay(23, 59, 58)])
        let oneSecond = Schedule.every(.seconds(1))
        #expect(Array(oneSecond.fireDates(from: lastDay(23, 59, 58))) == [lastDay(23, 59, 58), lastDay(23, 59, 59)])
        let minutes = Array(Schedule.every(.seconds(60)).fireDates(from: lastDay(23, 0)))
        #expect(minutes.count == 60 && minutes.last == lastDay(23, 59))
        // The last `Date` before the end is still an instant; the end itself is not.
        let last = Date(timeIntervalSinceReferenceDate: year10000.timeIntervalSinceReferenceDate.nextDown)
        #expect(oneSecond.nextFire(onOrAfter: last) == last)
        #expect(Array(oneSecond.fireDates(from: last)) == [last])
        #expect(oneSecond.nextFire(onOrAfter: year10000) == nil)
        #expect(Array(oneSecond.fireDates(from: year10000)).isEmpty)
        #expect(Array(Schedule.every(.zero).fireDates(from: year10000 + 86_400)).isEmpty)
    }

    @Test func timesOfDayStopAtTheEnd() throws {
        let nine = Schedule.times([try utcTime(9, 0)])
        #expect(nine.nextFire(onOrAfter: lastDay(23, 59, 59)) == nil)
        #expect(Array(nine.fireDates(from: lastDay(0, 0) - 86_400)) == [lastDay(9, 0) - 86_400, lastDay(9, 0)])
        // The bound is on the instant, not on the local date: 08:00 in Tokyo on 10000-01-01 is
        // 9999-12-31T23:00:00Z and fires; 09:00 there is 10000-01-01T00:00:00Z and does not.
        let tokyo = try TimeOfDay(hour: 8, minute: 0, timeZone: TimeZone(identifier: "Asia/Tokyo"))
        #expect(Array(Schedule.times([tokyo]).fireDates(from: lastDay(0, 0))) == [lastDay(23, 0)])
        let tokyoNine = try TimeOfDay(hour: 9, minute: 0, timeZone: TimeZone(identifier: "Asia/Tokyo"))
        #expect(Array(Schedule.times([tokyoNine]).fireDates(from: lastDay(0, 0, 1))).isEmpty)
        let mixed = Schedule.times([try utcTime(23, 30), try utcTime(12, 0), tokyo])
        #expect(Array(mixed.fireDates(from: lastDay(10, 0))) == [lastDay(12, 0), lastDay(23, 0), lastDay(23, 30)])
    }

    @Test func cronAndCalendarStopAtTheEnd() throws {
        let hourly = try Schedule.cron("0 * * * *", timeZone: TimeZone(identifier: "UTC"))
        let hours = Array(hourly.fireDates(from: lastDay(20, 30)))
        #expect(hours == [lastDay(21, 0), lastDay(22, 0), lastDay(23, 0)])
        #expect(hourly.nextFire(onOrAfter: lastDay(23, 0, 1)) == nil)
        // Calendar expressions already end after 2199, as in systemd.
        let daily = try Schedule.calendar("*-*-* 00:00:00 UTC")
        #expect(daily.nextFire(onOrAfter: lastDay(0, 0) - 86_400) == nil)
    }
}
