import Foundation
import LoopsTestSupport
import Testing

@testable import Loops

/// Compares calendar expressions with systemd itself: `systemd-analyze calendar` parses,
/// normalizes and iterates hundreds of generated expressions from base times around DST
/// changes, leap days and year ends, and our parser and search must agree on every one.
@Suite("Calendar expressions against systemd-analyze")
struct CalendarOracleTests {
    static let analyzePath = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }

    /// Local zones the child runs under; expressions without a suffix are read in them.
    static let localZones = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"]

    @Test("parse, normalize and next fire times agree with systemd-analyze",
          .enabled(if: analyzePath != nil, "systemd-analyze is not installed; skipping the oracle test"))
    func agreesWithSystemd() throws {
        var generator = SeededRandom(seed: 0x5EED_CA1E_2024)
        var report = CalendarOracleReport()
        for zoneName in Self.localZones {
            let localZone = try #require(TimeZone(identifier: zoneName))
            for base in Self.baseTimes(around: zoneName, using: &generator) {
                var expressions: [String] = []
                while expressions.count < 24 {
                    let expression = CalendarExpressionGenerator.make(using: &generator)
                    if !expressions.contains(expression) { expressions.append(expression) }
                }
                let iterations = 8
                let results = try Self.runAnalyze(expressions, base: base, iterations: iterations, timeZone: zoneName)
                for expression in expressions {
                    report.compare(expression, systemd: results[expression], base: base,
                                   iterations: iterations, localZone: localZone, zoneName: zoneName)
                }
            }
        }
        print("calendar oracle: \(report.summary)")
        for failure in report.failures.prefix(25) {
            Issue.record(Comment(rawValue: failure))
        }
        #expect(report.failures.isEmpty, "\(report.failures.count) disagreements with systemd-analyze")
        // The generator must really exercise both sides of the grammar and the search.
        #expect(report.accepted > 300)
        #expect(report.rejected > 30)
        #expect(report.comparedFires > 1000)
    }

    /// DST changes of `zone` in 2024/2025, leap days and year ends, each with random offsets
    /// of up to a few hours and sometimes a fraction of a second (in microseconds since 1970).
    static func baseTimes(around zone: String, using generator: inout SeededRandom) -> [Int64] {
        let transitions: [Int64]
        switch zone {
        case "Europe/Berlin": transitions = [1_711_846_800, 1_729_990_800, 1_743_296_400]
        case "America/New_York": transitions = [1_710_054_000, 1_730_613_600, 1_741_503_600]
        case "Australia/Lord_Howe": transitions = [1_712_417_400, 1_728_142_200, 1_743_867_000]
        default: transitions = []
        }
        // 2024-02-29 00:00 UTC, 2028-02-28 12:00 UTC, 2024-12-31 23:00 UTC, 2099-12-31 22:00 UTC
        let calendarEdges: [Int64] = [1_709_164_800, 1_835_352_000, 1_735_686_000, 4_102_437_600]
        var bases: [Int64] = []
        for anchor in transitions + calendarEdges {
            let shift = Int64(generator.next(below: 4 * 3600)) - 3 * 3600
            var micro = anchor * 1_000_000 + shift * 1_000_000
            if generator.next(below: 3) == 0 { micro += Int64(generator.next(below: 1_000_000)) }
            bases.append(micro)
        }
        return bases
    }

    /// One `systemd-analyze calendar` run for many expressions; the result maps each
    /// expression to its normalized form and next elapses (whole seconds since 1970), or to
    /// nil when systemd rejected it.
    static func runAnalyze(_ expressions: [String], base: Int64, iterations: Int, timeZone: String) throws -> [String: AnalyzeResult?] {
        let baseText = "@\(base / 1_000_000).\(String(format: "%06lld", base % 1_000_000))"
        // Files rather than pipes (SpawnedProcess.run): the child may write more than a pipe
        // holds before exiting, and stdout (buffered) and stderr must not be interleaved mid-line.
        let outcome = try SpawnedProcess.run(
            try #require(analyzePath),
            ["calendar", "--iterations=\(iterations)", "--base-time=\(baseText)", "--"] + expressions,
            environment: SpawnedProcess.environment(with: ["TZ": timeZone, "LC_ALL": "C", "SYSTEMD_COLORS": "0"])
        )
        let text = outcome.stdout + "\n" + outcome.stderr
        return parseAnalyzeOutput(text, expressions: expressions)
    }

    static func parseAnalyzeOutput(_ text: String, expressions: [String]) -> [String: AnalyzeResult?] {
        var results: [String: AnalyzeResult?] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("Failed to parse calendar specification '") {
            let rest = line.dropFirst("Failed to parse calendar specification '".count)
            if let end = rest.range(of: "': ", options: .backwards) {
                results[String(rest[..<end.lowerBound])] = .some(nil)
            }
        }
        // systemd's safety valve (1000 search steps) aborts the expression's whole block.
        for line in text.split(separator: "\n") where line.hasPrefix("Failed to determine next elapse for '") {
            let rest = line.dropFirst("Failed to determine next elapse for '".count)
            if let end = rest.range(of: "': ", options: .backwards) {
                results[String(rest[..<end.lowerBound])] = AnalyzeResult(gaveUp: true)
            }
        }
        var current: String?
        var result = AnalyzeResult()
        func flush() {
            if let current { results[current] = result }
            current = nil
            result = AnalyzeResult()
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE yyyy-MM-dd HH:mm:ss"
        func read(_ stamp: Substring) {
            let text = stamp.replacingOccurrences(of: " UTC", with: "")
            if let date = formatter.date(from: text) {
                result.fires.append(Int64(date.timeIntervalSince1970))
            } else {
                result.unreadable.append(text)
            }
        }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.drop { $0 == " " }
            if trimmed.hasPrefix("Original form: ") {
                flush()
                current = String(trimmed.dropFirst("Original form: ".count))
            } else if trimmed.hasPrefix("Normalized form: ") {
                // "Original form" is left out when it equals the normalized form.
                let normalized = String(trimmed.dropFirst("Normalized form: ".count))
                if current == nil || !result.normalized.isEmpty {
                    flush()
                    current = normalized
                }
                result.normalized = normalized
            } else if trimmed.hasPrefix("Next elapse: never") {
                result.never = true
            } else if trimmed.hasPrefix("(in UTC): ") {
                // Follows a local time; replaces the one read from it.
                _ = result.fires.popLast()
                read(trimmed.dropFirst("(in UTC): ".count))
            } else if trimmed.hasPrefix("Next elapse: ") || trimmed.hasPrefix("Iter. #") {
                // Under TZ=UTC systemd prints only this line, in UTC; otherwise an "(in UTC)"
                // line follows and wins.
                let stamp = trimmed.drop { $0 != ":" }.dropFirst(2)
                if stamp.hasSuffix(" UTC") {
                    read(stamp)
                } else {
                    result.fires.append(-1)
                }
            }
        }
        flush()
        return results.filter { expressions.contains($0.key) }
    }
}

/// What systemd said about one expression.
struct AnalyzeResult: Sendable {
    var normalized = ""
    /// systemd found no next elapse ("Failed to determine next elapse …", e.g. "Resource deadlock
    /// avoided" where its normalization would go backwards) and printed no block.
    var gaveUp = false
    var fires: [Int64] = []
    var never = false
    var unreadable: [String] = []
}

/// Tallies agreement and collects readable descriptions of every disagreement.
struct CalendarOracleReport {
    var accepted = 0
    var rejected = 0
    var comparedFires = 0
    var agreeingExpressions = 0
    var failures: [String] = []

    var summary: String {
        "\(accepted + rejected) expressions (\(accepted) accepted, \(rejected) rejected by systemd), "
            + "\(agreeingExpressions) agree fully, \(comparedFires) fire times compared, \(failures.count) disagreements"
    }

    mutating func compare(_ expression: String, systemd: AnalyzeResult??, base: Int64, iterations: Int,
                          localZone: TimeZone, zoneName: String) {
        let context = "'\(expression)' TZ=\(zoneName) base=@\(Double(base) / 1e6)"
        guard let systemd else {
            failures.append("\(context): systemd-analyze printed nothing about it")
            return
        }
        let ours: CalendarExpression?
        do {
            ours = try CalendarExpression(parsing: expression)
        } catch {
            ours = nil
        }
        guard let systemd else {
            rejected += 1
            if let ours {
                failures.append("\(context): systemd rejects it, we accept it as '\(ours.normalizedText)'")
            } else {
                agreeingExpressions += 1
            }
            return
        }
        accepted += 1
        guard let ours else {
            failures.append("\(context): systemd accepts it as '\(systemd.normalized)', we reject it")
            return
        }
        var agrees = true
        if systemd.gaveUp {
            // systemd 252's search refused to go backwards (its mktime normalization moved
            // backwards across a DST change): check ours against the brute-force scan instead,
            // over the three days after the base.
            let zone: TimeZone? = switch ours.spec.zone {
            case .utc: TimeZone(identifier: "UTC")
            case .named(let named): named
            case .local, .localAbbreviation: localZone
            }
            guard let zone else { return }
            let start = base / 1_000_000
            let window = BruteForceWindow(zone: zone, from: start - 86_400, to: start + 4 * 86_400)
            let horizon = start + 3 * 86_400
            var threshold = (second: start, microsecond: Int(base % 1_000_000) + 1)
            var expected: [Int64] = []
            while let fire = window.nextCalendar(ours.spec, from: threshold), fire.second < horizon, expected.count < iterations {
                expected.append(fire.second * 1_000_000 + Int64(fire.microsecond))
                threshold = (fire.second, fire.microsecond + 1)
            }
            var fires: [Int64] = []
            var next = ours.nextFire(onOrAfter: CalendarExpression.date(second: (base + 1) / 1_000_000,
                                                                       microsecond: Int((base + 1) % 1_000_000)),
                                     localZone: localZone)
            while let fire = next, fire.timeIntervalSince1970 < TimeInterval(horizon), fires.count < expected.count {
                fires.append(Int64((fire.timeIntervalSince1970 * 1e6).rounded()))
                next = ours.nextFire(onOrAfter: fire.strictlyLater, localZone: localZone)
            }
            comparedFires += expected.count
            // A `Date` holds today's instants to within a microsecond.
            if fires.count == expected.count, zip(fires, expected).allSatisfy({ abs($0 - $1) <= 1 }) {
                agreeingExpressions += 1
            } else {
                failures.append("\(context): systemd gives up; fires \(fires), brute force \(expected) (µs since 1970)")
            }
            return
        }
        if ours.normalizedText != systemd.normalized {
            failures.append("\(context): normalized '\(ours.normalizedText)', systemd '\(systemd.normalized)'")
            agrees = false
        }
        if !systemd.unreadable.isEmpty {
            failures.append("\(context): unreadable systemd time \(systemd.unreadable)")
            agrees = false
        }
        // systemd's next elapse is strictly after the base: our onOrAfter(base + 1 µs).
        var fires: [Int64] = []
        var next = ours.nextFire(onOrAfter: CalendarExpression.date(second: (base + 1) / 1_000_000,
                                                                   microsecond: Int((base + 1) % 1_000_000)),
                                 localZone: localZone)
        while let fire = next, fires.count < iterations {
            fires.append(Int64(fire.timeIntervalSince1970.rounded(.down)))
            next = ours.nextFire(onOrAfter: fire.strictlyLater, localZone: localZone)
        }
        let expected = systemd.never ? [] : systemd.fires
        comparedFires += max(expected.count, 1)
        if fires != expected {
            let show = { (list: [Int64]) in list.map { Date(timeIntervalSince1970: TimeInterval($0)).description } }
            failures.append("\(context): fires \(show(fires)), systemd \(show(expected))")
            agrees = false
        }
        if agrees { agreeingExpressions += 1 }
    }
}

/// Random calendar expressions over the whole grammar, mostly valid, some deliberately not.
enum CalendarExpressionGenerator {
    static let weekdayNames = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "monday", "Friday", "SUN"]

    static func make(using g: inout SeededRandom) -> String {
        if g.chance(8) {
            let shortcuts = ["minutely", "hourly", "daily", "monthly", "weekly", "yearly", "annually",
                             "quarterly", "semiannually", "semi-annually", "biannually", "Daily"]
            return g.pick(shortcuts) + zoneSuffix(using: &g)
        }
        if g.chance(25) {
            return nearTransitions(using: &g) + zoneSuffix(using: &g)
        }
        var parts: [String] = []
        if g.chance(30) { parts.append(weekdays(using: &g)) }
        if g.chance(75) { parts.append(date(using: &g)) }
        if g.chance(85) || parts.isEmpty { parts.append(time(using: &g)) }
        return parts.joined(separator: " ") + zoneSuffix(using: &g)
    }

    /// Times in the small hours, where the DST changes of the tested zones happen.
    static func nearTransitions(using g: inout SeededRandom) -> String {
        let hour = g.pick(["1", "2", "02", "3", "1..3", "0/1", "1,2,3", "*", "2/1", "0..4/2"])
        let minute = g.pick(["0", "30", "*", "0/15", "0/20", "10/7", "45", "15..45/15", "59", "0/1"])
        let second = g.pick(["", ":00", ":*", ":0/30", ":30.5", ":59.999999", ":0/0.75"])
        let date = g.pick(["", "*-*-* ", "*-03,04,10,11-* ", "Sun ", "*-*~07/1 ", "Sat,Sun *-*-* "])
        return date + hour + ":" + minute + second
    }

    static func zoneSuffix(using g: inout SeededRandom) -> String {
        switch g.next(below: 10) {
        case 0: return " UTC"
        case 1: return " Europe/Berlin"
        case 2: return " America/New_York"
        case 3: return " Australia/Lord_Howe"
        default: return ""
        }
    }

    static func weekdays(using g: inout SeededRandom) -> String {
        var items: [String] = []
        for _ in 0..<(1 + g.next(below: 3)) {
            if g.chance(40) {
                let a = g.next(below: 7)
                let b = g.chance(90) ? a + g.next(below: 7 - a) : g.next(below: 7)
                items.append(weekdayNames[a] + (g.chance(80) ? ".." : "-") + weekdayNames[b])
            } else {
                items.append(g.pick(weekdayNames))
            }
        }
        return items.joined(separator: ",") + (g.chance(5) ? "," : "")
    }

    static func date(using g: inout SeededRandom) -> String {
        let year: String
        switch g.next(below: 6) {
        case 0: year = String(2024 + g.next(below: 4))
        case 1: year = "\(2024 + g.next(below: 2))..\(2025 + g.next(below: 5))" + (g.chance(50) ? "/\(1 + g.next(below: 3))" : "")
        case 2: year = "\(2024 + g.next(below: 3))/\(1 + g.next(below: 4))"
        case 3: year = String(g.next(below: 100))
        default: year = "*"
        }
        let month = field(using: &g, range: 1...12, width: 2)
        let endOfMonth = g.chance(20)
        let day = endOfMonth ? field(using: &g, range: 1...(g.chance(90) ? 28 : 31), width: 2) : field(using: &g, range: 1...31, width: 2)
        if g.chance(25) {
            return month + (endOfMonth ? "~" : "-") + day
        }
        return year + "-" + month + (endOfMonth ? "~" : "-") + day
    }

    static func time(using g: inout SeededRandom) -> String {
        let hour = field(using: &g, range: 0...23, width: 2)
        let minute = field(using: &g, range: 0...59, width: 2)
        guard g.chance(60) else { return hour + ":" + minute }
        let second: String
        switch g.next(below: 6) {
        case 0: second = "\(g.next(below: 60)).\(g.next(below: 1000))"
        case 1: second = "\(g.next(below: 10))/\(g.pick(["0.5", "1.25", "7.5", "15", "20", "0.25", "30"]))"
        case 2: second = "\(g.next(below: 20))..\(20 + g.next(below: 40))" + (g.chance(50) ? "/\(g.pick(["2", "0.5", "10", "4.75"]))" : "")
        default: second = field(using: &g, range: 0...59, width: 2)
        }
        return hour + ":" + minute + ":" + second
    }

    /// `*`, values, lists, ranges and repetitions, mostly inside `range`, sometimes outside.
    static func field(using g: inout SeededRandom, range: ClosedRange<Int>, width: Int) -> String {
        if g.chance(35) { return "*" }
        let span = range.upperBound - range.lowerBound
        func value() -> Int {
            g.chance(4) ? range.upperBound + 1 + g.next(below: 3) : range.lowerBound + g.next(below: span + 1)
        }
        func number(_ v: Int) -> String {
            g.chance(30) ? String(repeating: "0", count: max(0, width - String(v).count)) + String(v) : String(v)
        }
        var items: [String] = []
        for _ in 0..<(1 + (g.chance(30) ? g.next(below: 3) : 0)) {
            switch g.next(below: 5) {
            case 0:
                let a = value()
                let b = g.chance(90) ? min(range.upperBound, a + g.next(below: max(1, span / 2))) : value()
                items.append(number(a) + ".." + number(b) + (g.chance(40) ? "/\(1 + g.next(below: max(1, span / 3)))" : ""))
            case 1:
                let a = range.lowerBound + g.next(below: max(1, span / 2))
                items.append(number(a) + "/\(1 + g.next(below: max(1, span / 2)))")
            default:
                items.append(number(value()))
            }
        }
        return items.joined(separator: ",")
    }
}
