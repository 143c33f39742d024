import Foundation
import Testing

@testable import Loops

/// Parsing, normalization, rejection and the next-fire rules of calendar expressions. The
/// expected values come from systemd.time(7) and from `systemd-analyze calendar` runs noted
/// next to them; the oracle suite checks hundreds more against systemd directly.
@Suite("Calendar expressions")
struct CalendarExpressionTests {
    private static func utc(_ text: String) -> Date {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)!
    }

    private static let berlin = TimeZone(identifier: "Europe/Berlin")!

    private static func fires(_ expression: String, from start: Date, count: Int, zone: TimeZone = berlin) throws -> [Date] {
        let parsed = try CalendarExpression(parsing: expression)
        var result: [Date] = []
        var next = parsed.nextFire(onOrAfter: start, localZone: zone)
        while let fire = next, result.count < count {
            result.append(fire)
            next = parsed.nextFire(onOrAfter: fire.strictlyLater, localZone: zone)
        }
        return result
    }

    // MARK: - Parsing and normalization

    /// The table of systemd.time(7), "Examples for valid timestamps and their normalized form".
    @Test("normalizes like the systemd.time(7) examples", arguments: [
        ("Sat,Thu,Mon..Wed,Sat..Sun", "Mon..Thu,Sat,Sun *-*-* 00:00:00"),
        ("Mon,Sun 12-*-* 2,1:23", "Mon,Sun 2012-*-* 01,02:23:00"),
        ("Wed *-1", "Wed *-*-01 00:00:00"),
        ("Wed..Wed,Wed *-1", "Wed *-*-01 00:00:00"),
        ("Wed, 17:48", "Wed *-*-* 17:48:00"),
        ("Wed..Sat,Tue 12-10-15 1:2:3", "Tue..Sat 2012-10-15 01:02:03"),
        ("*-*-7 0:0:0", "*-*-07 00:00:00"),
        ("10-15", "*-10-15 00:00:00"),
        ("monday *-12-* 17:00", "Mon *-12-* 17:00:00"),
        ("Mon,Fri *-*-3,1,2 *:30:45", "Mon,Fri *-*-01,02,03 *:30:45"),
        ("12,14,13,12:20,10,30", "*-*-* 12,13,14:10,20,30:00"),
        ("12..14:10,20,30", "*-*-* 12..14:10,20,30:00"),
        ("mon,fri *-1/2-1,3 *:30:45", "Mon,Fri *-01/2-01,03 *:30:45"),
        ("03-05 08:05:40", "*-03-05 08:05:40"),
        ("08:05:40", "*-*-* 08:05:40"),
        ("05:40", "*-*-* 05:40:00"),
        ("Sat,Sun 12-05 08:05:40", "Sat,Sun *-12-05 08:05:40"),
        ("Sat,Sun 08:05:40", "Sat,Sun *-*-* 08:05:40"),
        ("2003-03-05 05:40", "2003-03-05 05:40:00"),
        ("05:40:23.4200004/3.1700005", "*-*-* 05:40:23.420000/3.170001"),
        ("2003-02..04-05", "2003-02..04-05 00:00:00"),
        ("2003-03-05 05:40 UTC", "2003-03-05 05:40:00 UTC"),
        ("2003-03-05", "2003-03-05 00:00:00"),
        ("03-05", "*-03-05 00:00:00"),
        ("hourly", "*-*-* *:00:00"),
        ("daily", "*-*-* 00:00:00"),
        ("daily UTC", "*-*-* 00:00:00 UTC"),
        ("monthly", "*-*-01 00:00:00"),
        ("weekly", "Mon *-*-* 00:00:00"),
        ("weekly Pacific/Auckland", "Mon *-*-* 00:00:00 Pacific/Auckland"),
        ("yearly", "*-01-01 00:00:00"),
        ("annually", "*-01-01 00:00:00"),
        ("*:2/3", "*-*-* *:02/3:00"),
        // Shortcuts and forms listed elsewhere in the page.
        ("minutely", "*-*-* *:*:00"),
        ("quarterly", "*-01,04,07,10-01 00:00:00"),
        ("semiannually", "*-01,07-01 00:00:00"),
        ("*-02~03", "*-02~03 00:00:00"),
        ("Mon *-05~07/1", "Mon *-05~07/1 00:00:00"),
    ])
    func normalizes(_ input: String, _ normalized: String) throws {
        #expect(try CalendarExpression(parsing: input).normalizedText == normalized)
    }

    /// Forms checked with systemd-analyze 252: `-` weekday ranges, repetitions pulled onto
    /// their last value, one-value ranges, `*` seconds, `@` timestamps.
    @Test("normalizes like systemd-analyze 252", arguments: [
        ("Mon-Fri 12:00", "Mon..Fri *-*-* 12:00:00"),
        ("*:*:0/0.5", "*-*-* *:*:00/0.500000"),
        ("00..23/6:00", "*-*-* 00..18/6:00:00"),
        ("*-*-5..5", "*-*-05 00:00:00"),
        ("*-*-5..6/3", "*-*-05 00:00:00"),
        ("*-*-* 00:00:00/1", "*-*-* 00:00:*"),
        ("*:*:1..2.5/0.7", "*-*-* *:*:01..02.400000/0.700000"),
        ("69-01-01", "2069-01-01 00:00:00"),
        ("@1700000000", "2023-11-14 22:13:20 UTC"),
        ("Mon,Tue, 12:00", "Mon,Tue *-*-* 12:00:00"),
        ("Mon  12:00", "Mon *-*-* 12:00:00"),
        ("daily utc", "*-*-* 00:00:00 UTC"),
        ("bi-annually", "*-01,07-01 00:00:00"),
        ("*-*~10,11..18", "*-*~10,11..18 00:00:00"),
    ])
    func normalizesLikeSystemd(_ input: String, _ normalized: String) throws {
        #expect(try CalendarExpression(parsing: input).normalizedText == normalized)
    }

    /// Each rejected by systemd-analyze 252; the message must name the offending part.
    @Test("rejects what systemd rejects, naming the bad part", arguments: [
        ("", "empty"),
        ("now", "now"),
        ("today", "today"),
        ("tomorrow", "tomorrow"),
        ("Mond 12:00", "Mond"),
        ("Sat..Mon", "Mon"),
        ("Mon..", "Mon"),
        ("*-*-* 24:00", "hour 24"),
        ("*-13-1", "month 13"),
        ("*-*-32", "day 32"),
        ("2200-01-01", "year 2200"),
        ("1969-01-01", "year 1969"),
        ("*:0/0", "0/0"),
        ("*:50/15", "50/15"),
        ("*:*:60", "second 60"),
        ("*:*:59.9999995", "second 60"),
        ("*-*~29", "29"),
        ("*-*~11..18,27", "27"),
        ("*:*:1..1.5", "1..1.5"),
        ("daily Foo/Bar", "Foo/Bar"),
        ("daily Europe/berlin", "Europe/berlin"),
        (" daily", " daily"),
        ("daily ", "daily"),
        ("12:00:00.", "decimal point"),
        ("4294967296:00", "4294967296"),
        ("*-*-*~1", "~"),
    ])
    func rejects(_ input: String, _ named: String) {
        do {
            let parsed = try CalendarExpression(parsing: input)
            Issue.record("accepted \"\(input)\" as \(parsed.normalizedText)")
        } catch let error as LoopError {
            #expect(error.code == .invalidSchedule)
            #expect(error.message.contains("\"\(input)\""), "message should quote the expression: \(error.message)")
            #expect(error.message.lowercased().contains(named.lowercased()), "message should name \(named): \(error.message)")
        } catch {
            Issue.record("unexpected error type \(error)")
        }
    }

    @Test("Schedule.calendar parses and reports the expression")
    func scheduleEntryPoint() throws {
        let schedule = try Schedule.calendar("Mon..Fri *-*-* 09:30 UTC")
        #expect(schedule.description == "calendar Mon..Fri *-*-* 09:30 UTC")
        // Thursday 2024-02-29 10:00 UTC → Friday 09:30 UTC.
        #expect(schedule.nextFire(onOrAfter: Self.utc("2024-02-29T10:00:00Z")) == Self.utc("2024-03-01T09:30:00Z"))
        #expect(throws: LoopError.self) { try Schedule.calendar("Mon..Fry") }
    }

    // MARK: - Next fire

    @Test("on-or-after includes the instant itself; after excludes it")
    func inclusiveAndStrict() throws {
        let schedule = try Schedule.calendar("*:0/15 UTC")
        let slot = Self.utc("2024-05-01T10:15:00Z")
        #expect(schedule.nextFire(onOrAfter: slot) == slot)
        #expect(schedule.nextFire(after: slot) == Self.utc("2024-05-01T10:30:00Z"))
        #expect(schedule.nextFire(onOrAfter: slot.addingTimeInterval(-0.000001)) == slot)
        #expect(schedule.nextFire(onOrAfter: slot.addingTimeInterval(0.000001)) == Self.utc("2024-05-01T10:30:00Z"))
    }

    @Test("fractional seconds repeat exactly")
    func fractionalSeconds() throws {
        let fires = try Self.fires("*:*:0/0.25 UTC", from: Self.utc("2024-05-01T10:15:59.8Z"), count: 3)
        #expect(fires == [Self.utc("2024-05-01T10:16:00Z"), Self.utc("2024-05-01T10:16:00.25Z"),
                          Self.utc("2024-05-01T10:16:00.5Z")])
    }

    @Test("last days of the month and last weekday")
    func endOfMonth() throws {
        // systemd.time(7): "*-02~03" is the third last day of February; "Mon *-05~07/1" the
        // last Monday of May.
        #expect(try Self.fires("*-02~03 UTC", from: Self.utc("2024-01-01T00:00:00Z"), count: 2)
            == [Self.utc("2024-02-27T00:00:00Z"), Self.utc("2025-02-26T00:00:00Z")])
        #expect(try Self.fires("Mon *-05~07/1 UTC", from: Self.utc("2024-01-01T00:00:00Z"), count: 2)
            == [Self.utc("2024-05-27T00:00:00Z"), Self.utc("2025-05-26T00:00:00Z")])
    }

    @Test("impossible or past dates have no next fire")
    func never() throws {
        let start = Self.utc("2024-01-01T00:00:00Z")
        #expect(try CalendarExpression(parsing: "*-02-30").nextFire(onOrAfter: start, localZone: Self.berlin) == nil)
        #expect(try CalendarExpression(parsing: "2003-03-05").nextFire(onOrAfter: start, localZone: Self.berlin) == nil)
        #expect(try CalendarExpression(parsing: "@1700000000").nextFire(onOrAfter: start) == nil)
        // systemd searches up to the end of 2199.
        let last = try CalendarExpression(parsing: "2199-12-31 23:59:59 UTC")
        #expect(last.nextFire(onOrAfter: start) == Self.utc("2199-12-31T23:59:59Z"))
        #expect(try CalendarExpression(parsing: "yearly UTC").nextFire(onOrAfter: Self.utc("2199-06-01T00:00:00Z")) == nil)
    }

    @Test("29 February in a leap year only")
    func leapDay() throws {
        #expect(try Self.fires("*-02-29 12:00 UTC", from: Self.utc("2024-03-01T00:00:00Z"), count: 2)
            == [Self.utc("2028-02-29T12:00:00Z"), Self.utc("2032-02-29T12:00:00Z")])
    }

    // MARK: - Daylight saving (each checked with systemd-analyze under TZ=Europe/Berlin)

    @Test("a local time in the spring-forward gap is skipped")
    func springForwardGap() throws {
        // 2024-03-31: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
        let fires = try Self.fires("*-*-* 02:30", from: Self.utc("2024-03-30T12:00:00Z"), count: 2)
        #expect(fires == [Self.utc("2024-04-01T00:30:00Z"), Self.utc("2024-04-02T00:30:00Z")])
        // A repetition continues after the gap: 01:40 CET, then 03:00 CEST.
        let every20 = try Self.fires("*:0/20", from: Self.utc("2024-03-31T00:30:00Z"), count: 2)
        #expect(every20 == [Self.utc("2024-03-31T00:40:00Z"), Self.utc("2024-03-31T01:00:00Z")])
    }

    @Test("a repeated local time fires once, at its first occurrence")
    func fallBackOverlap() throws {
        // 2024-10-27: 03:00 CEST falls back to 02:00 CET; 02:00–02:59 happen twice.
        let daily = try Self.fires("*-*-* 02:30", from: Self.utc("2024-10-26T12:00:00Z"), count: 2)
        #expect(daily == [Self.utc("2024-10-27T00:30:00Z"), Self.utc("2024-10-28T01:30:00Z")])
        // From the first pass the second pass is not run again: 02:20, 02:40 CEST, 03:00 CET.
        let every20 = try Self.fires("*:0/20", from: Self.utc("2024-10-27T00:10:00Z"), count: 3)
        #expect(every20 == [Self.utc("2024-10-27T00:20:00Z"), Self.utc("2024-10-27T00:40:00Z"),
                            Self.utc("2024-10-27T02:00:00Z")])
        // Started inside the second pass (02:10 CET), systemd stays in it: 02:20 CET.
        let late = try Self.fires("*:0/20", from: Self.utc("2024-10-27T01:10:00Z"), count: 1)
        #expect(late == [Self.utc("2024-10-27T01:20:00Z")])
    }

    @Test("an explicit zone is used whatever the local zone")
    func explicitZone() throws {
        let newYork = TimeZone(identifier: "America/New_York")!
        let fires = try Self.fires("*-*-* 09:00 Europe/Berlin", from: Self.utc("2024-07-01T00:00:00Z"), count: 1, zone: newYork)
        #expect(fires == [Self.utc("2024-07-01T07:00:00Z")])
    }

    @Test("the search jumps field by field")
    func performance() throws {
        let expressions = try ["Mon *-02-29 23:59:59.5", "Sun *-12~01 12:00", "*:*:*", "2199-12-31", "*-02-30"]
            .map { try CalendarExpression(parsing: $0) }
        let clock = ContinuousClock()
        let start = Self.utc("2024-01-01T00:00:00Z")
        let elapsed = clock.measure {
            for expression in expressions {
                var date = start
                for _ in 0..<200 {
                    guard let next = expression.nextFire(onOrAfter: date, localZone: Self.berlin) else { break }
                    #expect(next >= date)
                    date = next.strictlyLater
                }
            }
        }
        #expect(elapsed < .seconds(5), "1000 searches up to 2199 took \(elapsed)")
    }

    // MARK: - Fuzz

    /// Thousands of random and mutated strings: each parses or throws `LoopError`, and a
    /// parsed one yields fire times not before the start, in increasing order.
    @Test("random and mutated input never crashes")
    func fuzz() {
        var generator = SeededRandom(seed: 0xF0F0_1234)
        let seeds = ["Mon..Fri *-*-* 02:30", "*-02~03 12:00:00.5", "*:0/15", "daily UTC", "2024-*-01 Europe/Berlin",
                     "Sat,Sun 08:05:40", "*:*:0/0.25", "@1700000000", "weekly", "*-1..12/3-1 1..23/2:*:*"]
        let alphabet = Array("0123456789*-~:.,/ @+MonTueSatSunUTCdaily\tZ\u{e9}")
        let start = Self.utc("2024-03-30T23:00:00Z")
        var parsed = 0
        var rejected = 0
        for index in 0..<4000 {
            var characters: [Character]
            if index % 4 == 0 {
                characters = (0..<generator.next(below: 24)).map { _ in generator.pick(alphabet) }
            } else {
                characters = Array(generator.pick(seeds))
                for _ in 0..<(1 + generator.next(below: 3)) {
                    let position = generator.next(below: characters.count + 1)
                    switch generator.next(below: 3) {
                    case 0: characters.insert(generator.pick(alphabet), at: position)
                    case 1 where position < characters.count: characters.remove(at: position)
                    default: if position < characters.count { characters[position] = generator.pick(alphabet) }
                    }
                }
            }
            let text = String(characters)
            do {
                let expression = try CalendarExpression(parsing: text)
                parsed += 1
                var previous = start
                var next = expression.nextFire(onOrAfter: start, localZone: Self.berlin)
                for _ in 0..<3 {
                    guard let fire = next else { break }
                    #expect(fire >= previous, "\(text): \(fire) before \(previous)")
                    previous = fire.strictlyLater
                    next = expression.nextFire(onOrAfter: previous, localZone: Self.berlin)
                }
            } catch let error as LoopError {
                rejected += 1
                #expect(error.code == .invalidSchedule)
            } catch {
                Issue.record("\(text): unexpected error \(error)")
            }
        }
        #expect(parsed > 100)
        #expect(rejected > 1000)
    }
}
