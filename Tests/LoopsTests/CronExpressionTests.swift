import Foundation
import Testing

@testable import Loops

/// `2026-03-29T01:30Z` or `2026-03-29T01:30:15Z` (UTC) as a `Date`, through Foundation's calendar.
private func utc(_ text: String) -> Date {
    let parts = text.dropLast().split(separator: "T")
    let date = parts[0].split(separator: "-").map { Int($0)! }
    let time = parts[1].split(separator: ":").map { Int($0)! }
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    let components = DateComponents(
        year: date[0], month: date[1], day: date[2], hour: time[0], minute: time[1], second: time.count > 2 ? time[2] : 0
    )
    return calendar.date(from: components)!
}

private func cron(_ text: String, _ zoneName: String = "UTC") throws -> Schedule {
    try Schedule.cron(text, timeZone: TimeZone(identifier: zoneName)!)
}

private func fires(_ text: String, _ zoneName: String = "UTC", from start: String, count: Int) throws -> [Date] {
    Array(try cron(text, zoneName).fireDates(from: utc(start)).prefix(count))
}

private func dates(_ texts: String...) -> [Date] {
    texts.map(utc)
}

/// The message of the `LoopError` that parsing `text` throws.
private func rejection(_ text: String) -> String? {
    do {
        _ = try CronExpression(parsing: text, timeZone: nil)
        return nil
    } catch let error as LoopError {
        #expect(error.code == .invalidSchedule)
        return error.message
    } catch {
        return "unexpected \(error)"
    }
}

/// Whether `date`'s wall time in `zone` matches `fields` by the plain rules (no DST handling):
/// what an entry that follows elapsed time fires on. Written from the cron(5) text, with
/// Foundation's calendar, independently of the parser's bit sets.
private func wallTimeMatches(_ date: Date, _ zone: TimeZone, minutes: Set<Int>, hours: Set<Int>, days: Set<Int>,
    months: Set<Int>, weekdays: Set<Int>, dayStar: Bool, weekdayStar: Bool) -> Bool
{
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = zone
    let parts = calendar.dateComponents([.minute, .hour, .day, .month, .weekday, .second], from: date)
    guard parts.second == 0, minutes.contains(parts.minute!), hours.contains(parts.hour!),
        months.contains(parts.month!)
    else { return false }
    let dayMatches = days.contains(parts.day!)
    let weekdayMatches = weekdays.contains(parts.weekday! - 1)
    return dayStar || weekdayStar ? dayMatches && weekdayMatches : dayMatches || weekdayMatches
}

@Suite("Cron expressions")
struct CronExpressionTests {
    @Test func rangesStepsAndWeekdayNames() throws {
        // 2026-11-27 is a Friday.
        #expect(
            try fires("*/15 9-17 * * Mon-Fri", from: "2026-11-27T17:40Z", count: 3)
                == dates("2026-11-27T17:45Z", "2026-11-30T09:00Z", "2026-11-30T09:15Z"))
        #expect(try fires("1-10/3 0 1 1 *", from: "2026-01-01T00:00Z", count: 5)
            == dates("2026-01-01T00:01Z", "2026-01-01T00:04Z", "2026-01-01T00:07Z", "2026-01-01T00:10Z",
                "2027-01-01T00:01Z"))
        // `a/n` is `a` to the end of the range.
        #expect(try fires("5/20 3 * * *", from: "2026-05-01T00:00Z", count: 4)
            == dates("2026-05-01T03:05Z", "2026-05-01T03:25Z", "2026-05-01T03:45Z", "2026-05-02T03:05Z"))
        #expect(try fires("0,30 1,13 * * *", from: "2026-05-01T01:00Z", count: 5)
            == dates("2026-05-01T01:00Z", "2026-05-01T01:30Z", "2026-05-01T13:00Z", "2026-05-01T13:30Z",
                "2026-05-02T01:00Z"))
    }

    @Test func namesAreCaseInsensitive() throws {
        let lower = try fires("0 12 * jan,jul sun", from: "2026-01-01T00:00Z", count: 12)
        let mixed = try fires("0 12 * JAN,Jul SuN", from: "2026-01-01T00:00Z", count: 12)
        let numeric = try fires("0 12 * 1,7 0", from: "2026-01-01T00:00Z", count: 12)
        #expect(lower == numeric && mixed == numeric)
        #expect(numeric.first == utc("2026-01-04T12:00Z"))  // the first Sunday of 2026
        #expect(try fires("0 0 1 feb-apr *", from: "2026-01-01T00:00Z", count: 4)
            == dates("2026-02-01T00:00Z", "2026-03-01T00:00Z", "2026-04-01T00:00Z", "2027-02-01T00:00Z"))
    }

    @Test func zeroAndSevenAreBothSunday() throws {
        let seven = try fires("0 0 * * 7", from: "2026-01-01T00:00Z", count: 10)
        #expect(seven == (try fires("0 0 * * 0", from: "2026-01-01T00:00Z", count: 10)))
        #expect(seven == (try fires("0 0 * * sun", from: "2026-01-01T00:00Z", count: 10)))
        #expect(seven.first == utc("2026-01-04T00:00Z"))
        #expect(try fires("0 0 * * 5-7", from: "2026-01-01T00:00Z", count: 4)
            == dates("2026-01-02T00:00Z", "2026-01-03T00:00Z", "2026-01-04T00:00Z", "2026-01-09T00:00Z"))
    }

    @Test func dayOfMonthOrDayOfWeekWhenBothAreRestricted() throws {
        // The 13th or any Friday (Vixie's OR rule). Fridays of Nov/Dec 2026: 6, 13, 20, 27, 4, 11, 18.
        #expect(try fires("0 0 13 * 5", from: "2026-11-01T00:00Z", count: 8)
            == dates("2026-11-06T00:00Z", "2026-11-13T00:00Z", "2026-11-20T00:00Z", "2026-11-27T00:00Z",
                "2026-12-04T00:00Z", "2026-12-11T00:00Z", "2026-12-13T00:00Z", "2026-12-18T00:00Z"))
        // A field starting with `*` is unrestricted, even when stepped: AND. Odd days that are Mondays.
        #expect(try fires("0 0 */2 * mon", from: "2026-11-01T00:00Z", count: 3)
            == dates("2026-11-09T00:00Z", "2026-11-23T00:00Z", "2026-12-07T00:00Z"))
        #expect(try fires("0 0 1 * *", from: "2026-11-02T00:00Z", count: 1) == dates("2026-12-01T00:00Z"))
    }

    @Test func shortcuts() throws {
        let start = "2026-11-25T10:17Z"  // a Wednesday
        #expect(try fires("@hourly", from: start, count: 2) == dates("2026-11-25T11:00Z", "2026-11-25T12:00Z"))
        #expect(try fires("@daily", from: start, count: 1) == dates("2026-11-26T00:00Z"))
        #expect(try fires("@midnight", from: start, count: 1) == dates("2026-11-26T00:00Z"))
        #expect(try fires("@weekly", from: start, count: 1) == dates("2026-11-29T00:00Z"))
        #expect(try fires("@monthly", from: start, count: 1) == dates("2026-12-01T00:00Z"))
        #expect(try fires("@yearly", from: start, count: 1) == dates("2027-01-01T00:00Z"))
        #expect(try fires("@annually", from: start, count: 1) == dates("2027-01-01T00:00Z"))
        #expect(try fires("  @DAILY ", from: start, count: 1) == dates("2026-11-26T00:00Z"))
    }

    @Test func firstFireIncludesTheStartAndSecondsAreZero() throws {
        #expect(try fires("30 9 * * *", from: "2026-05-01T09:30Z", count: 2)
            == dates("2026-05-01T09:30Z", "2026-05-02T09:30Z"))
        let schedule = try cron("30 9 * * *")
        #expect(schedule.nextFire(onOrAfter: utc("2026-05-01T09:30Z") + 0.001) == utc("2026-05-02T09:30Z"))
        #expect(schedule.nextFire(onOrAfter: utc("2026-05-01T09:29:59Z")) == utc("2026-05-01T09:30Z"))
    }

    @Test func leapDaysAndImpossibleDates() throws {
        #expect(try fires("0 0 29 2 *", from: "2026-01-01T00:00Z", count: 3)
            == dates("2028-02-29T00:00Z", "2032-02-29T00:00Z", "2036-02-29T00:00Z"))
        // 2100 is not a leap year.
        #expect(try fires("0 0 29 2 *", from: "2096-03-01T00:00Z", count: 1) == dates("2104-02-29T00:00Z"))
        #expect(try fires("0 12 31 12 *", from: "2026-12-31T12:00:01Z", count: 1) == dates("2027-12-31T12:00Z"))
        for impossible in ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30,31 feb *"] {
            #expect(try cron(impossible).nextFire(onOrAfter: utc("2026-01-01T00:00Z")) == nil, "\(impossible)")
        }
        // With a restricted weekday the OR rule makes 31 February harmless: Mondays in February.
        #expect(try fires("0 0 31 2 1", from: "2026-01-01T00:00Z", count: 2)
            == dates("2026-02-02T00:00Z", "2026-02-09T00:00Z"))
        // 29 February on a Sunday: 2032, then 2060.
        #expect(try fires("0 0 29 2 */7", from: "2026-01-01T00:00Z", count: 2)
            == dates("2032-02-29T00:00Z", "2060-02-29T00:00Z"))
    }

    // Europe/Berlin 2026: 02:00 CET → 03:00 CEST at 01:00Z on 29 March; 03:00 CEST → 02:00 CET at
    // 01:00Z on 25 October.

    @Test func berlinSpringForward() throws {
        // A fixed hour in the gap fires once, at its end (03:00 CEST).
        #expect(try fires("30 2 * * *", "Europe/Berlin", from: "2026-03-28T12:00Z", count: 2)
            == dates("2026-03-29T01:00Z", "2026-03-30T00:30Z"))
        #expect(try fires("0,30 2 * * *", "Europe/Berlin", from: "2026-03-29T00:00Z", count: 2)
            == dates("2026-03-29T01:00Z", "2026-03-30T00:00Z"))
        #expect(try fires("* 2 * * *", "Europe/Berlin", from: "2026-03-29T00:00Z", count: 2)
            == dates("2026-03-29T01:00Z", "2026-03-30T00:00Z"))
        // A wildcard hour has no runs in the missing hour.
        #expect(try fires("30 * * * *", "Europe/Berlin", from: "2026-03-28T23:00Z", count: 3)
            == dates("2026-03-28T23:30Z", "2026-03-29T00:30Z", "2026-03-29T01:30Z"))
        #expect(try fires("*/30 * * * *", "Europe/Berlin", from: "2026-03-29T00:00Z", count: 4)
            == dates("2026-03-29T00:00Z", "2026-03-29T00:30Z", "2026-03-29T01:00Z", "2026-03-29T01:30Z"))
        #expect(try fires("30 */2 * * *", "Europe/Berlin", from: "2026-03-28T23:00Z", count: 2)
            == dates("2026-03-28T23:30Z", "2026-03-29T02:30Z"))  // 00:30 CET, then 04:30 CEST
    }

    @Test func berlinFallBack() throws {
        // A fixed hour fires once, in the first pass.
        #expect(try fires("30 2 * * *", "Europe/Berlin", from: "2026-10-24T12:00Z", count: 2)
            == dates("2026-10-25T00:30Z", "2026-10-26T01:30Z"))
        #expect(try fires("*/30 2 * * *", "Europe/Berlin", from: "2026-10-24T12:00Z", count: 3)
            == dates("2026-10-25T00:00Z", "2026-10-25T00:30Z", "2026-10-26T01:00Z"))
        // A wildcard hour runs in both passes.
        #expect(try fires("30 * * * *", "Europe/Berlin", from: "2026-10-24T23:00Z", count: 4)
            == dates("2026-10-24T23:30Z", "2026-10-25T00:30Z", "2026-10-25T01:30Z", "2026-10-25T02:30Z"))
        // Starting inside the second pass: the wildcard entry still runs there, the fixed one waits.
        #expect(try cron("45 * * * *", "Europe/Berlin").nextFire(onOrAfter: utc("2026-10-25T01:10Z"))
            == utc("2026-10-25T01:45Z"))
        #expect(try cron("45 2 * * *", "Europe/Berlin").nextFire(onOrAfter: utc("2026-10-25T01:10Z"))
            == utc("2026-10-26T01:45Z"))
        // Starting in the first pass after the slot: the wildcard entry picks the second pass.
        #expect(try cron("15 * * * *", "Europe/Berlin").nextFire(onOrAfter: utc("2026-10-25T00:50Z"))
            == utc("2026-10-25T01:15Z"))
    }

    // America/New_York 2026: EST→EDT at 07:00Z on 8 March, EDT→EST at 06:00Z on 1 November.

    @Test func newYork() throws {
        #expect(try fires("30 2 * * *", "America/New_York", from: "2026-03-08T00:00Z", count: 2)
            == dates("2026-03-08T07:00Z", "2026-03-09T06:30Z"))
        #expect(try fires("30 * * * *", "America/New_York", from: "2026-03-08T06:00Z", count: 2)
            == dates("2026-03-08T06:30Z", "2026-03-08T07:30Z"))
        #expect(try fires("30 1 * * *", "America/New_York", from: "2026-11-01T00:00Z", count: 2)
            == dates("2026-11-01T05:30Z", "2026-11-02T06:30Z"))
        #expect(try fires("30 * * * *", "America/New_York", from: "2026-11-01T05:00Z", count: 3)
            == dates("2026-11-01T05:30Z", "2026-11-01T06:30Z", "2026-11-01T07:30Z"))
    }

    // Australia/Lord_Howe: 02:00 → 02:30 at 15:30Z on 3 Oct 2026; 02:00 → 01:30 at 15:00Z on 4 Apr 2026.

    @Test func lordHoweHalfHourChanges() throws {
        #expect(try fires("15 2 * * *", "Australia/Lord_Howe", from: "2026-10-03T00:00Z", count: 2)
            == dates("2026-10-03T15:30Z", "2026-10-04T15:15Z"))
        #expect(try fires("15 * * * *", "Australia/Lord_Howe", from: "2026-10-03T14:00Z", count: 2)
            == dates("2026-10-03T14:45Z", "2026-10-03T16:15Z"))
        #expect(try fires("45 1 * * *", "Australia/Lord_Howe", from: "2026-04-04T00:00Z", count: 2)
            == dates("2026-04-04T14:45Z", "2026-04-05T15:15Z"))
        #expect(try fires("45 * * * *", "Australia/Lord_Howe", from: "2026-04-04T14:00Z", count: 3)
            == dates("2026-04-04T14:45Z", "2026-04-04T15:15Z", "2026-04-04T16:15Z"))
    }

    /// For entries that follow elapsed time, the result equals a minute-by-minute scan of instants
    /// whose wall time matches, across both 2026 changes of several zones.
    @Test func wildcardHoursMatchAMinuteScanAcrossChanges() throws {
        let cases: [(zone: String, start: String)] = [
            ("Europe/Berlin", "2026-03-28T20:00Z"), ("Europe/Berlin", "2026-10-24T20:00Z"),
            ("America/New_York", "2026-03-08T03:00Z"), ("America/New_York", "2026-11-01T02:00Z"),
            ("Australia/Lord_Howe", "2026-10-03T10:00Z"), ("Australia/Lord_Howe", "2026-04-04T10:00Z"),
            ("Pacific/Chatham", "2026-09-26T10:00Z"), ("Asia/Kolkata", "2026-01-01T00:00Z"),
        ]
        let expressions: [(text: String, minutes: Set<Int>, hours: Set<Int>)] = [
            ("*/20 * * * *", [0, 20, 40], Set(0...23)),
            ("15,45 */3 * * *", [15, 45], [0, 3, 6, 9, 12, 15, 18, 21]),
            ("5 1-4/1 * * *", [5], [1, 2, 3, 4]),
        ]
        for (zoneName, start) in cases {
            let zone = TimeZone(identifier: zoneName)!
            for expression in expressions {
                let schedule = try cron(expression.text, zoneName)
                let got = Array(schedule.fireDates(from: utc(start)).prefix { $0 < utc(start) + 86_400 })
                var expected: [Date] = []
                var instant = utc(start)
                while instant < utc(start) + 86_400 {
                    if wallTimeMatches(instant, zone, minutes: expression.minutes, hours: expression.hours,
                        days: Set(1...31), months: Set(1...12), weekdays: Set(0...6), dayStar: true, weekdayStar: true)
                    {
                        expected.append(instant)
                    }
                    instant += 60
                }
                #expect(got == expected, "\(expression.text) in \(zoneName) from \(start)")
            }
        }
    }

    /// Random valid expressions in UTC agree with a minute scan over the following days.
    @Test func randomExpressionsMatchAMinuteScan() throws {
        var random = SeededRandom(seed: 42)
        let utcZone = TimeZone(identifier: "UTC")!
        for _ in 0..<40 {
            let minute = Int.random(in: 0...59, using: &random)
            let hourStep = Int.random(in: 1...8, using: &random)
            let day = Int.random(in: 1...28, using: &random)
            let weekday = Int.random(in: 0...6, using: &random)
            let restrictDay = Bool.random(using: &random)
            let text = "\(minute) */\(hourStep) \(restrictDay ? "\(day)" : "*") * \(weekday)"
            let start = utc("2026-01-01T00:00Z") + Double(Int.random(in: 0...(86_400 * 300), using: &random)) * 60
            let got = try #require(try cron(text).nextFire(onOrAfter: start))
            var instant = Date(timeIntervalSinceReferenceDate: (start.timeIntervalSinceReferenceDate / 60).rounded(.up) * 60)
            while !wallTimeMatches(instant, utcZone, minutes: [minute], hours: Set(stride(from: 0, through: 23, by: hourStep)),
                days: restrictDay ? [day] : Set(1...31), months: Set(1...12), weekdays: [weekday],
                dayStar: !restrictDay, weekdayStar: false)
            {
                instant += 60
            }
            #expect(got == instant, "\(text) from \(start)")
        }
    }

    @Test func everyMinuteForADayIsFast() throws {
        let schedule = try cron("* * * * *", "Europe/Berlin")
        let start = utc("2026-10-24T22:00Z")
        let got = Array(schedule.fireDates(from: start).prefix { $0 < start + 86_400 })
        #expect(got.count == 1440)  // the repeated hour's minutes both count: elapsed time
    }

    @Test func rejectionsNameTheFieldAndValue() {
        #expect(rejection("61 * * * *") == "cron minute field: 61 is out of range 0-59")
        #expect(rejection("* 24 * * *") == "cron hour field: 24 is out of range 0-23")
        #expect(rejection("* * 0 * *") == "cron day-of-month field: 0 is out of range 1-31")
        #expect(rejection("* * * 13 *") == "cron month field: 13 is out of range 1-12")
        #expect(rejection("* * * * 8") == "cron day-of-week field: 8 is out of range 0-7")
        #expect(rejection("* * * * Mon-Foo")?.contains("'Foo'") == true)
        #expect(rejection("* * * Janu *")?.hasPrefix("cron month field: 'Janu'") == true)
        #expect(rejection("*/0 * * * *")?.hasPrefix("cron minute field: step 0") == true)
        #expect(rejection("5-1 * * * *")?.contains("5-1") == true)
        #expect(rejection("1,,2 * * * *")?.hasPrefix("cron minute field: empty item") == true)
        #expect(rejection("-5 * * * *")?.hasPrefix("cron minute field:") == true)
        #expect(rejection("99999999999999999999999 * * * *")?.hasPrefix("cron minute field:") == true)
        #expect(rejection("* * * *")?.contains("5 fields") == true)
        #expect(rejection("* * * * * *")?.contains("got 6") == true)
        #expect(rejection("")?.contains("got 0") == true)
        #expect(rejection("@reboot")?.contains("@reboot") == true)
        #expect(rejection("@every 5m")?.contains("'@every 5m'") == true)
        #expect(rejection("* * * * Monday")?.contains("'Monday'") == true)
    }

    /// crontab(5) separates fields by spaces and tabs; other white space (which `isWhitespace`
    /// accepted) is named in the error, not taken as a separator.
    @Test(arguments: [
        ("0 9\u{00A0}* * *", "U+00A0 (no-break space)"),
        ("0\u{2003}9 * * *", "U+2003 (em space)"),
        ("0 9 * *\u{0085}*", "U+0085 (next line)"),
        ("0 9 * * *\u{2028}", "U+2028 (line separator)"),
        ("0 9 *\u{000B}* *", "U+000B (line tabulation)"),
        ("0 9 *\u{000C}* *", "U+000C (form feed)"),
        ("0 9\n* * *", "U+000A (line feed)"),
        ("\u{3000}0 9 * * *", "U+3000 (ideographic space)"),
        ("@daily\u{00A0}", "U+00A0 (no-break space)"),
        ("0 9 * * *\u{202F}", "U+202F (narrow no-break space)"),
    ])
    func onlySpacesAndTabsSeparateFields(text: String, named: String) {
        #expect(rejection(text) == "cron expression contains \(named); fields are separated by spaces and tabs")
    }

    @Test func spacesTabsAndLineEndsAroundTheExpressionAreIgnored() throws {
        let expected = try fires("0 9 * * 1-5", from: "2026-11-27T00:00Z", count: 3)
        #expect(expected == dates("2026-11-27T09:00Z", "2026-11-30T09:00Z", "2026-12-01T09:00Z"))
        for text in ["0\t9 *  *\t\t1-5", " \t0 9 * * 1-5 \t", "0 9 * * 1-5\n", "0 9 * * 1-5\r\n", "\t0 9 * * 1-5\r"] {
            #expect(try fires(text, from: "2026-11-27T00:00Z", count: 3) == expected, "\(text.debugDescription)")
        }
        #expect(try fires(" @daily\n", from: "2026-11-27T00:01Z", count: 1) == dates("2026-11-28T00:00Z"))
        // Only spaces, tabs and line ends: no fields, as before.
        #expect(rejection(" \t\n")?.contains("got 0") == true)
    }

    /// Instants end before 10000-01-01T00:00:00Z: the documented output format has a four-digit year.
    @Test func noInstantInYear10000() throws {
        let lastMinute = try cron("59 23 31 12 *")
        #expect(Array(lastMinute.fireDates(from: utc("9999-12-01T00:00Z"))) == dates("9999-12-31T23:59Z"))
        #expect(try cron("0 0 * * *").nextFire(onOrAfter: utc("9999-12-31T00:00:01Z")) == nil)
        // The next 29 February after 9996 is in 10000: none.
        #expect(try cron("0 0 29 2 *").nextFire(onOrAfter: utc("9996-03-01T00:00Z")) == nil)
        let everyMinute = Array(try cron("* * * * *", "Pacific/Kiritimati").fireDates(from: utc("9999-12-31T23:00Z")))
        #expect(everyMinute.count == 60 && everyMinute.last == utc("9999-12-31T23:59Z"))
    }

    @Test func fuzzedInputNeverCrashes() throws {
        var random = SeededRandom(seed: 7)
        let alphabet = Array("0123456789*/-,@ \tJanFebMonSunsatDECxyz7\u{00e9}\u{1F600}\n")
        let fragments = ["*", "*/", "-", ",", " ", "59", "60", "0", "7", "8", "31", "32", "12", "13", "jan", "sun",
            "@daily", "@", "/", "999999999999999999999", "-1", "1-", "--"]
        var parsed = 0
        for round in 0..<5000 {
            var text = ""
            let length = Int.random(in: 0...24, using: &random)
            for _ in 0..<length {
                if round % 2 == 0 {
                    text.append(alphabet.randomElement(using: &random)!)
                } else {
                    text += fragments.randomElement(using: &random)!
                    if Bool.random(using: &random) { text += " " }
                }
            }
            do {
                let expression = try CronExpression(parsing: text, timeZone: TimeZone(identifier: "Europe/Berlin"))
                parsed += 1
                let start = utc("2026-01-01T00:00Z") + Double(Int.random(in: 0...(86_400 * 365), using: &random)) * 60
                if let next = expression.nextFire(onOrAfter: start) {
                    #expect(next >= start, "\(text)")
                }
            } catch let error as LoopError {
                #expect(error.code == .invalidSchedule)
                #expect(!error.message.isEmpty)
            }
        }
        #expect(parsed > 0)
    }

    @Test func farFutureAndInvalidDatesGiveNil() throws {
        let schedule = try cron("0 0 * * *")
        #expect(schedule.nextFire(onOrAfter: Date(timeIntervalSinceReferenceDate: .infinity)) == nil)
        #expect(schedule.nextFire(onOrAfter: Date(timeIntervalSinceReferenceDate: .nan)) == nil)
        #expect(schedule.nextFire(onOrAfter: Date.distantFuture) != nil)
    }
}
