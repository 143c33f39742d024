import Foundation
import LoopsTestSupport
import Testing

private func loops(_ arguments: String..., environment: [String: String] = [:]) throws -> ProgramOutcome {
    try runToCompletion(try loopsBinary(), arguments, environment: environment)
}

/// Unix seconds → `YYYY-MM-DDTHH:MM:SS.ffffffZ` through Foundation's calendar, independently
/// of the tool's own formatter.
private func isoUTC(_ unixSeconds: Double) -> String {
    let date = Date(timeIntervalSince1970: unixSeconds.rounded(.down))
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
    let micros = Int(((unixSeconds - unixSeconds.rounded(.down)) * 1e6).rounded())
    return String(
        format: "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!, micros
    )
}

@Suite("loops next")
struct NextCommandTests {
    @Test func everyIsStartPlusMultiplesOfTheInterval() throws {
        let base = 1_774_742_400.0  // 2026-03-29T00:00:00Z
        let outcome = try loops("next", "--every", "1h30m", "--from", "2026-03-29T00:00:00Z", "--count", "4")
        #expect(outcome.status == 0)
        #expect(outcome.stderr.isEmpty)
        #expect(outcome.lines == (0..<4).map { isoUTC(base + Double($0) * 5400) })

        let fractional = try loops("next", "--every", "250ms", "--from", "2026-01-01T00:00:00.5+01:00", "--count", "5")
        let start = 1_767_222_000.5  // 2025-12-31T23:00:00.5Z
        #expect(fractional.lines == (0..<5).map { isoUTC(start + Double($0) * 0.25) })

        let decimal = try loops("next", "--every", "1.5m", "--from", "2026-06-01T12:00:00-04:00", "--count", "3")
        let noonNewYork = 1_780_329_600.0  // 2026-06-01T16:00:00Z
        #expect(decimal.lines == (0..<3).map { isoUTC(noonNewYork + Double($0) * 90) })
    }

    @Test func countDefaultsToTenAndFromDefaultsToNow() throws {
        let before = Date().timeIntervalSince1970
        let outcome = try loops("next", "--every", "1s")
        #expect(outcome.status == 0)
        #expect(outcome.lines.count == 10)
        // The first instant is "now" as the tool saw it: between our clock readings.
        let after = Date().timeIntervalSince1970
        let first = try #require(outcome.lines.first)
        #expect(first >= isoUTC(before - 0.000_001) && first <= isoUTC(after + 0.000_001))
    }

    @Test func timesAcrossTheBerlinSpringForward() throws {
        let outcome = try loops(
            "next", "--times", "09:00,17:30:15.25@Europe/Berlin,02:30@Europe/Berlin", "--from", "2026-03-28T00:00:00Z",
            "--count", "6"
        )
        #expect(outcome.status == 0)
        #expect(outcome.lines == [
            "2026-03-28T01:30:00.000000Z",  // 02:30 CET
            "2026-03-28T09:00:00.000000Z",
            "2026-03-28T16:30:15.250000Z",  // 17:30:15.25 CET
            "2026-03-29T01:30:00.000000Z",  // 02:30 does not exist: 03:30 CEST
            "2026-03-29T09:00:00.000000Z",
            "2026-03-29T15:30:15.250000Z",  // 17:30:15.25 CEST
        ])
    }

    @Test func cronWithAZoneAndAnEndlessOrEmptySchedule() throws {
        let gap = try loops("next", "--cron", "30 2 * * *", "--tz", "Europe/Berlin", "--from", "2026-03-28T12:00:00Z", "--count", "2")
        #expect(gap.lines == ["2026-03-29T01:00:00.000000Z", "2026-03-30T00:30:00.000000Z"])
        let weekdays = try loops("next", "--cron", "0 9 * * mon-fri", "--tz", "UTC", "--from", "2026-11-27T10:00:00Z", "--count", "2")
        #expect(weekdays.lines == ["2026-11-30T09:00:00.000000Z", "2026-12-01T09:00:00.000000Z"])
        // No 31 February: the schedule has no instants, so no lines and success.
        let never = try loops("next", "--cron", "0 0 31 2 *", "--count", "3")
        #expect(never.status == 0 && never.stdout.isEmpty && never.stderr.isEmpty)
        // The system zone comes from TZ when --tz is absent.
        let local = try loops("next", "--cron", "@daily", "--from", "2026-07-01T12:00:00Z", "--count", "1",
            environment: ["TZ": "Asia/Kolkata"])
        #expect(local.lines == ["2026-07-01T18:30:00.000000Z"])
    }

    /// `--calendar` agrees with `systemd-analyze calendar` for the same base time and zone.
    @Test(arguments: [
        ("Mon..Fri *-*-* 09:00", "UTC"),
        ("*-*-* 02:30", "Europe/Berlin"),
        ("*-*-1,15 12:00:00", "America/New_York"),
        ("Sat *-*-* 00/6:15", "UTC"),
    ])
    func calendarMatchesSystemd(expression: String, zone: String) throws {
        let base: Int64 = 1_774_650_007  // 2026-03-27T22:20:07Z, just before Berlin's spring-forward
        let systemd = try runToCompletion(
            URL(fileURLWithPath: "/usr/bin/systemd-analyze"),
            ["calendar", "--iterations=8", "--base-time=@\(base)", expression],
            environment: ["TZ": zone]
        )
        try #require(systemd.status == 0, "systemd-analyze: \(systemd.stderr)")
        let utcLines = systemd.lines.filter { $0.contains("(in UTC):") }
        let chosen = utcLines.isEmpty
            ? systemd.lines.filter { $0.contains("Next elapse:") || $0.contains("Iter. #") }
            : utcLines
        // "    Next elapse: Mon 2026-11-30 09:00:00 UTC" → "2026-11-30T09:00:00.000000Z"
        let expected = chosen.map { line -> String in
            let words = line.split(separator: " ")
            let date = words[words.count - 3]
            let time = words[words.count - 2]
            return "\(date)T\(time).000000Z"
        }
        #expect(expected.count == 8)
        let outcome = try loops(
            "next", "--calendar", expression, "--from", isoUTC(Double(base)), "--count", "8",
            environment: ["TZ": zone]
        )
        #expect(outcome.stderr.isEmpty)
        #expect(outcome.lines == expected, "\(expression) in \(zone)")
    }

    /// Each bad input prints one line on stderr naming the bad part, nothing on stdout, status 2.
    @Test(arguments: [
        (["next"], "--every"),
        (["next", "--every", "5s", "--cron", "@daily"], "--cron"),
        (["next", "--every", "5x"], "5x"),
        (["next", "--every=-5s"], "-5s"),
        (["next", "--every", "5"], "'5'"),
        (["next", "--times", "25:00"], "25"),
        (["next", "--times", "09:00@Mars/Olympus"], "Mars/Olympus"),
        (["next", "--times", "9:00,"], "--times"),
        (["next", "--cron", "61 * * * *"], "61"),
        (["next", "--cron", "@reboot"], "@reboot"),
        (["next", "--cron", "@daily", "--tz", "Nowhere/City"], "Nowhere/City"),
        (["next", "--tz", "UTC", "--every", "5s"], "--tz"),
        (["next", "--every", "5s", "--count", "0"], "--count"),
        (["next", "--every", "5s", "--count", "abc"], "abc"),
        (["next", "--every", "5s", "--from", "yesterday"], "yesterday"),
        (["next", "--every", "5s", "--from", "2026-02-30T00:00:00Z"], "2026-02-30"),
        (["next", "--every", "5s", "--from", "2026-03-01T00:00:00"], "2026-03-01T00:00:00"),
        (["next", "--bogus"], "--bogus"),
        (["next", "--every", "5s", "extra"], "extra"),
        (["frobnicate"], "frobnicate"),
        ([], "subcommand"),
        (["next", "--calendar", "not a calendar"], "--calendar"),
    ])
    func badInputIsOneLineAndStatusTwo(arguments: [String], named part: String) throws {
        let outcome = try runToCompletion(try loopsBinary(), arguments)
        #expect(outcome.status == 2, "\(arguments)")
        #expect(outcome.stdout.isEmpty, "\(arguments)")
        let lines = outcome.stderr.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 2 && lines[1].isEmpty, "\(arguments): \(outcome.stderr)")
        #expect(outcome.stderr.contains(part), "\(arguments): \(outcome.stderr)")
    }

    /// A TZ that names no zone Foundation can represent is an error for schedules read in the
    /// local zone (never a silent UTC): one line naming the value, status 2. The variable is set
    /// in the child's environment only.
    @Test(arguments: [
        ("EST5EDT,M3.2.0,M11.1.0", "is a POSIX rule string"),
        ("CET-1CEST,M3.5.0,M10.5.0/3", "is a POSIX rule string"),
        ("Nowhere/Foo", "is not a time zone the system knows"),
    ])
    func localZoneSchedulesRejectATZThatNamesNoZone(tz: String, problem: String) throws {
        for schedule in [["--cron", "0 9 * * *"], ["--calendar", "*-*-* 09:00"], ["--calendar", "daily"]] {
            let outcome = try runToCompletion(try loopsBinary(), ["next"] + schedule + ["--count", "1"], environment: ["TZ": tz])
            #expect(outcome.status == 2, "\(schedule)")
            #expect(outcome.stdout.isEmpty, "\(schedule)")
            #expect(
                outcome.stderr == "loops: error: TZ='\(tz)' \(problem); loops needs a zone name such as America/New_York or Europe/Berlin\n",
                "\(schedule): \(outcome.stderr)"
            )
        }
        // Schedules with a zone of their own (or none at all) do not read TZ.
        for schedule in [
            ["--cron", "0 9 * * *", "--tz", "Europe/Berlin"], ["--calendar", "*-*-* 09:00 UTC"], ["--times", "09:00"],
            ["--every", "1h"],
        ] {
            let outcome = try runToCompletion(
                try loopsBinary(), ["next"] + schedule + ["--count", "1", "--from", "2026-07-01T00:00:00Z"], environment: ["TZ": tz]
            )
            #expect(outcome.status == 0 && outcome.stderr.isEmpty, "\(schedule): \(outcome.stderr)")
            #expect(outcome.lines.count == 1, "\(schedule)")
        }
    }

    /// TZ values that name a zone keep working: tzdata files (EST5EDT is one, without a rule),
    /// `:name`, zoneinfo paths, and POSIX strings without daylight saving, read as the C library
    /// reads them (GMT+5 is five hours west of Greenwich).
    @Test(arguments: [
        ("EST5EDT", "2026-06-30T13:00:00.000000Z"),
        (":Europe/Berlin", "2026-07-01T07:00:00.000000Z"),
        ("/usr/share/zoneinfo/Asia/Kolkata", "2026-07-01T03:30:00.000000Z"),
        ("UTC0", "2026-07-01T09:00:00.000000Z"),
        ("GMT+5", "2026-06-30T14:00:00.000000Z"),
        ("JST-9", "2026-07-01T00:00:00.000000Z"),
        ("", "2026-07-01T09:00:00.000000Z"),
    ])
    func localZoneSchedulesFollowATZThatNamesAZone(tz: String, expected: String) throws {
        for schedule in [["--cron", "0 9 * * *"], ["--calendar", "*-*-* 09:00"]] {
            let outcome = try runToCompletion(
                try loopsBinary(), ["next"] + schedule + ["--from", "2026-06-30T12:00:00Z", "--count", "1"],
                environment: ["TZ": tz]
            )
            #expect(outcome.status == 0 && outcome.stderr.isEmpty, "TZ='\(tz)' \(schedule): \(outcome.stderr)")
            #expect(outcome.lines == [expected], "TZ='\(tz)' \(schedule)")
        }
    }

    /// Every line has the documented form with a four-digit year: schedules end before
    /// 10000-01-01T00:00:00Z, intervals included.
    @Test func instantsEndBeforeTheYear10000() throws {
        let format = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/
        let cases: [([String], [String])] = [
            (["--times", "09:00", "--from", "9999-12-31T23:59:59Z"], []),
            (["--times", "09:00", "--from", "9999-12-30T12:00:00Z"], ["9999-12-31T09:00:00.000000Z"]),
            (["--every", "5s", "--from", "9999-12-31T23:59:58Z"], ["9999-12-31T23:59:58.000000Z"]),
            (["--every", "1s", "--from", "9999-12-31T23:59:58Z"], ["9999-12-31T23:59:58.000000Z", "9999-12-31T23:59:59.000000Z"]),
            (["--every", "1s", "--from", "9999-12-31T23:59:59.5Z"], ["9999-12-31T23:59:59.500000Z"]),
            (["--cron", "*/30 23 * * *", "--tz", "UTC", "--from", "9999-12-31T22:00:00Z"], ["9999-12-31T23:00:00.000000Z", "9999-12-31T23:30:00.000000Z"]),
            (["--cron", "0 0 * * *", "--tz", "Asia/Tokyo", "--from", "9999-12-31T00:00:00Z"], ["9999-12-31T15:00:00.000000Z"]),
        ]
        for (arguments, expected) in cases {
            let outcome = try runToCompletion(try loopsBinary(), ["next"] + arguments + ["--count", "5"])
            #expect(outcome.status == 0 && outcome.stderr.isEmpty, "\(arguments): \(outcome.stderr)")
            #expect(outcome.lines == expected, "\(arguments)")
            #expect(outcome.lines.allSatisfy { $0.wholeMatch(of: format) != nil }, "\(outcome.lines)")
        }
    }

    @Test func helpIsNotAnError() throws {
        let outcome = try loops("next", "--help")
        #expect(outcome.status == 0)
        #expect(outcome.stdout.contains("--every"))
    }
}

/// Inputs found by the fuzz targets of Fuzz/ (their files are in Fuzz/Corpus/<target>/regression-*).
@Suite("loops next: fuzz regressions")
struct NextCommandFuzzRegressionTests {
    /// Fuzz/Corpus/next-arguments/regression-negative-year: an offset took `--from` before the
    /// year 0000 and the tool printed `-0001-12-31T23:00:00.000000Z`, a line in no documented
    /// form that `--from` cannot read back. Such a start is bad input now.
    @Test func fromBeforeTheYear0000IsRejected() throws {
        let outcome = try loops("next", "--from", "0000-01-01T00:00:00+01:00", "--every", "1s")
        #expect(outcome.status == 2)
        #expect(outcome.stdout.isEmpty)
        #expect(outcome.stderr.contains("--from: '0000-01-01T00:00:00+01:00'"), "\(outcome.stderr)")
        let earliest = try loops("next", "--from", "0000-01-01T00:00:00Z", "--every", "1s", "--count", "1")
        #expect(earliest.status == 0)
        #expect(earliest.lines == ["0000-01-01T00:00:00.000000Z"])
    }
}
