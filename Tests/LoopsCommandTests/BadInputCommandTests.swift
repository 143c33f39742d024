import Foundation
import LoopsTestSupport
import Testing

/// Runs `loops` to completion without the systemd variables of the test process.
private func loops(_ arguments: [String], environment extra: [String: String] = [:]) throws -> ProgramOutcome {
    var environment: [String: String?] = ["NOTIFY_SOCKET": nil, "WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]
    for (key, value) in extra { environment[key] = value }
    return try runToCompletion(try loopsBinary(), arguments, environment: environment)
}

/// The CLI cells of the bad-input matrix (Documentation/Reliability.md) that `loops next` and
/// `loops run` suites do not check: each prints exactly the line shown on stderr, nothing on
/// stdout, and exits 2.
@Suite("Bad input: loops next and loops run")
struct BadInputCommandTests {
    private static let from = ["--from", "2026-01-01T00:00:00Z", "--count", "2"]

    @Test(arguments: [
        // --every
        (["--every", ""], "--every: '' is empty; use a number and a unit such as 5s"),
        (["--every", "-5s"], "--every: '-5s' is not a duration: expected a number at '-5s'"),
        (["--every", "1h-5m"], "--every: '1h-5m' is not a duration: expected a number at '-5m'"),
        (["--every", "nan"], "--every: 'nan' is not a duration: expected a number at 'nan'"),
        (["--every", "inf"], "--every: 'inf' is not a duration: expected a number at 'inf'"),
        (["--every", "1e3s"], "--every: '1e3s' has an unknown unit 'e' (use ms, s, m, h)"),
        (["--every", "99999999999h"], "--every: '99999999999h' is too large"),
        (["--every", "9223372036.9s"], "--every: '9223372036.9s' is too large"),
        (["--every", "99999999999999999999s"], "--every: '99999999999999999999s' is too large"),
        (["--every", "５s"], "--every: '５s' is not a duration: expected a number at '５s'"),
        (["--every", "💥"], "--every: '💥' is not a duration: expected a number at '💥'"),
        // --times
        (["--times", ""], "--times: empty time in ''"),
        (["--times", "24:00"], "--times: '24:00': hour must be in 0...23, got 24"),
        (["--times", "23:60"], "--times: '23:60': minute must be in 0...59, got 60"),
        (["--times", "12:00:60"], "--times: '12:00:60': second must be in 0...59, got 60"),
        (["--times", "12:00:61"], "--times: '12:00:61': second must be in 0...59, got 61"),
        (["--times", "-1:00"], "--times: '-1:00' is not a time HH:MM[:SS[.frac]]"),
        (["--times", "12"], "--times: '12' is not a time HH:MM[:SS[.frac]]"),
        (["--times", "١٢:٠٠"], "--times: '١٢:٠٠' is not a time HH:MM[:SS[.frac]]"),
        (["--times", "12:00:00.1234567891"], "--times: '12:00:00.1234567891': the fraction of a second takes 1 to 9 digits"),
        (["--times", "12:00@"], "--times: unknown time zone '' in '12:00@'"),
        (["--times", "12:00@../../../etc/passwd"], "--times: unknown time zone '../../../etc/passwd' in '12:00@../../../etc/passwd'"),
        // --calendar
        (["--calendar", ""], "--calendar: invalid calendar expression \"\": the expression is empty"),
        (["--calendar", "*-13-01"], "--calendar: invalid calendar expression \"*-13-01\": month 13 is out of range 1…12"),
        (["--calendar", "*-*-* 25:00"], "--calendar: invalid calendar expression \"*-*-* 25:00\": hour 25 is out of range 0…23"),
        (["--calendar", "💥"], "--calendar: invalid calendar expression \"💥\": expected a number or \"*\" for the date or hour: unexpected \"💥\""),
        // --cron and --tz
        (["--cron", ""], "--cron: cron expression needs 5 fields (minute hour day-of-month month day-of-week), got 0 in ''"),
        (["--cron", "* * * * * *"], "--cron: cron expression needs 5 fields (minute hour day-of-month month day-of-week), got 6 in '* * * * * *'"),
        (["--cron", "* * 0 * *"], "--cron: cron day-of-month field: 0 is out of range 1-31"),
        (["--cron", "* * * 13 *"], "--cron: cron month field: 13 is out of range 1-12"),
        (["--cron", "@daily", "--tz", ""], "--tz: unknown time zone ''"),
        (["--cron", "@daily", "--tz", "europe/berlin"], "--tz: unknown time zone 'europe/berlin'"),
        (["--cron", "@daily", "--tz", "../../../etc/passwd"], "--tz: unknown time zone '../../../etc/passwd'"),
        // Several schedules
        (["--every", "5s", "--times", "09:00"], "give only one schedule, got --every and --times"),
    ])
    func nextRejectsTheSchedule(arguments: [String], line: String) throws {
        let result = try loops(["next"] + arguments + Self.from)
        #expect(result.status == 2, "\(arguments)")
        #expect(result.stdout.isEmpty, "\(arguments)")
        #expect(result.stderr == "loops: error: \(line)\n", "\(arguments)")
    }

    @Test(arguments: [
        (["--from", ""], "--from: '' is not an ISO 8601 instant with a zone from year 0000 on, such as 2026-03-29T00:30:00Z"),
        (["--from", "2026-13-01T00:00:00Z"], "--from: '2026-13-01T00:00:00Z' is not an ISO 8601 instant with a zone from year 0000 on, such as 2026-03-29T00:30:00Z"),
        (["--from", "2026-01-00T00:00:00Z"], "--from: '2026-01-00T00:00:00Z' is not an ISO 8601 instant with a zone from year 0000 on, such as 2026-03-29T00:30:00Z"),
        (["--from", "2026-01-01T24:00:00Z"], "--from: '2026-01-01T24:00:00Z' is not an ISO 8601 instant with a zone from year 0000 on, such as 2026-03-29T00:30:00Z"),
        (["--from", "2026-01-01T00:60:00Z"], "--from: '2026-01-01T00:60:00Z' is not an ISO 8601 instant with a zone from year 0000 on, such as 2026-03-29T00:30:00Z"),
        (["--from", "2026-01-01T00:00:61Z"], "--from: '2026-01-01T00:00:61Z' is not an ISO 8601 instant with a zone from year 0000 on, such as 2026-03-29T00:30:00Z"),
        (["--from", "2026-01-01T00:00:00+24:00"], "--from: '2026-01-01T00:00:00+24:00' is not an ISO 8601 instant with a zone from year 0000 on, such as 2026-03-29T00:30:00Z"),
        (["--from", "2026-01-01T00:00:00.Z"], "--from: '2026-01-01T00:00:00.Z' is not an ISO 8601 instant with a zone from year 0000 on, such as 2026-03-29T00:30:00Z"),
        (["--count", "-1"], "--count must be at least 1, got -1"),
        (["--count", "99999999999999999999"], "The value '99999999999999999999' is invalid for '--count <count>'"),
        (["--count"], "Missing value for '--count <count>'"),
        (["--from"], "Missing value for '--from <iso8601>'"),
    ])
    func nextRejectsFromAndCount(arguments: [String], line: String) throws {
        let result = try loops(["next", "--every", "5s"] + arguments)
        #expect(result.status == 2, "\(arguments)")
        #expect(result.stdout.isEmpty, "\(arguments)")
        #expect(result.stderr == "loops: error: \(line)\n", "\(arguments)")
    }

    @Test func nextMissingValues() throws {
        for option in ["--every <duration>", "--times <times>", "--calendar <expr>", "--cron <expr>"] {
            let flag = String(option.split(separator: " ")[0])
            let result = try loops(["next", flag])
            #expect(result.status == 2 && result.stdout.isEmpty, "\(flag)")
            #expect(result.stderr == "loops: error: Missing value for '\(option)'\n")
        }
    }

    /// Values that look wrong but are accepted, each with its documented meaning.
    @Test func nextAcceptsEdgeValues() throws {
        func lines(_ arguments: [String]) throws -> [String] {
            let result = try loops(["next"] + arguments)
            #expect(result.status == 0 && result.stderr.isEmpty, "\(arguments): \(result.stderr)")
            return result.lines
        }
        // Interval 0 (and below a nanosecond): a loop runs back to back, so the start repeats.
        #expect(try lines(["--every", "0s"] + Self.from) == ["2026-01-01T00:00:00.000000Z", "2026-01-01T00:00:00.000000Z"])
        #expect(try lines(["--every", "0.0000000001s"] + Self.from) == ["2026-01-01T00:00:00.000000Z", "2026-01-01T00:00:00.000000Z"])
        // Duplicate times are one slot.
        #expect(try lines(["--times", "12:00,12:00"] + Self.from) == ["2026-01-01T12:00:00.000000Z", "2026-01-02T12:00:00.000000Z"])
        // A repeated option: the last one wins (argument-parser's rule).
        #expect(try lines(["--every", "5s", "--every", "6s"] + Self.from) == ["2026-01-01T00:00:00.000000Z", "2026-01-01T00:00:06.000000Z"])
        // A leap second in --from reads as the next minute.
        #expect(try lines(["--every", "5s", "--from", "2026-01-01T00:00:60Z", "--count", "1"]) == ["2026-01-01T00:01:00.000000Z"])
        // A date that never comes: no lines, status 0.
        #expect(try lines(["--cron", "0 0 30 2 *", "--tz", "UTC"] + Self.from) == [])
        #expect(try lines(["--calendar", "*-02-30 UTC"] + Self.from) == [])
        // An interval longer than a loop takes is fine for next (it only prints instants).
        #expect(try lines(["--every", "9000000000s"] + Self.from) == ["2026-01-01T00:00:00.000000Z", "2311-03-15T16:00:00.000000Z"])
    }

    @Test(arguments: [
        (["--every", "1s", "--count", "-1"], "--count must be at least 1, got -1"),
        (["--every", "1s", "--count", "abc"], "The value 'abc' is invalid for '--count <count>'"),
        (["--every", "1s", "--retry-exit-codes", ""], "--retry-exit-codes: '' is not an exit status from 1 to 255"),
        (["--every", "1s", "--retry-exit-codes", "0"], "--retry-exit-codes: '0' is not an exit status from 1 to 255"),
        (["--every", "1s", "--retry-exit-codes", "-1"], "--retry-exit-codes: '-1' is not an exit status from 1 to 255"),
        (["--every", "9223372036.5s"], "--every: interval must be at most 9223372036 s (about 292 years), got 9223372036.5 seconds"),
        (["--times", ""], "--times: empty time in ''"),
        (["--cron", "61 * * * *"], "--cron: cron minute field: 61 is out of range 0-59"),
        (["--cron", "@daily", "--tz", "Nowhere/X"], "--tz: unknown time zone 'Nowhere/X'"),
        (["--every", "1s", "--bogus"], "Unknown option '--bogus'"),
    ])
    func runRejects(arguments: [String], line: String) throws {
        let result = try loops(["run"] + arguments + ["--", "/bin/true"])
        #expect(result.status == 2, "\(arguments)")
        #expect(result.stdout.isEmpty, "\(arguments)")
        #expect(result.stderr == "loops: error: \(line)\n", "\(arguments)")
    }

    /// Was a trap (SIGILL): the status line after the first run read `nextIteration`, whose
    /// arithmetic overflowed for a next run after the year 2262.
    @Test func runWithAnIntervalEndingAfter2262() throws {
        let result = try loops(["run", "--every", "9000000000s", "--count", "1", "--", "/bin/true"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.isEmpty)
    }

    @Test(arguments: [("soon", "Invalid argument (errno 22)"), ("0", "Invalid argument (errno 22)"), ("-1", "Numerical result out of range (errno 34)")])
    func runWithAWatchdogUsecThatIsNoTimeout(value: String, reason: String) throws {
        let result = try loops(["run", "--every", "1s", "--", "/bin/true"], environment: ["WATCHDOG_USEC": value])
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr == "loops: error: WATCHDOG_USEC: sd_watchdog_enabled(WATCHDOG_USEC=\(value)) failed: \(reason)\n")
    }

    @Test func runACommandThatCannotStart() throws {
        let missing = try loops(["run", "--every", "1s", "--count", "1", "--", "/nonexistent/loops-command"])
        #expect(missing.status == 2)
        #expect(missing.stdout.isEmpty)
        #expect(missing.stderr == "loops: error: cannot run '/nonexistent/loops-command': not found\n")
        let notExecutable = try loops(["run", "--every", "1s", "--count", "1", "--", "/etc/passwd"])
        #expect(notExecutable.status == 2)
        #expect(notExecutable.stderr == "loops: error: cannot run '/etc/passwd': is not executable (no execute permission)\n")
    }
}
