import Foundation
import Loops
import LoopsTestKit
import Testing

/// Ten simulated years (2026–2035) of interval, times-of-day, calendar and cron loops in twenty
/// zones, run on ``VirtualClock``s and compared run by run with the pure ``Schedule`` API
/// (`fireDates(from:)`) from the same start instant: no duplicated, missing or out-of-order run,
/// each at its predicted instant, with `nextIteration` showing the predicted next one.
///
/// Cost: on virtual time a wall-clock run costs about 15 µs of engine and loop work plus the
/// schedule computations (the loop asks its schedule twice per run, the prediction once; in a
/// debug build ~6 µs per time of day, ~12 µs per calendar, ~4 µs per cron computation). To stay
/// within seconds the daily loops are the interval and the times of day; calendar and cron loops
/// run on the weekdays on which the zone changes its offset, so that they still meet every
/// change of the decade.
@Suite("Long runs: ten virtual years in twenty zones, run by run against the Schedule API")
struct LongVirtualRunTests {
    /// 2026-01-01T00:00:00Z: the first slot of every interval loop and of the UTC 00:00 time, so
    /// a start exactly on a slot is covered too.
    static let start = Date(timeIntervalSince1970: 1_767_225_600)
    /// Ten years later (three leap days): 2036-01-01T00:00:00Z.
    static let end = start.addingTimeInterval(3653 * 86_400)

    /// A wall time of the day, in the zone of its ``Zone``.
    struct WallTime {
        let hour: Int
        let minute: Int
    }

    /// A zone of the run, with a wall time that falls into its gaps and one that falls into its
    /// overlaps in 2026–2035 (in a zone without changes, two ordinary times), and the weekdays
    /// those wall times have on change days (0 = Sunday).
    struct Zone {
        let name: String
        let gap: WallTime
        let overlap: WallTime
        let changeDays: [Int]
        let changes: Bool
    }

    private static func zone(
        _ name: String, gap: (Int, Int), overlap: (Int, Int), on days: [Int] = [0], changes: Bool = true
    ) -> Zone {
        Zone(
            name: name,
            gap: WallTime(hour: gap.0, minute: gap.1),
            overlap: WallTime(hour: overlap.0, minute: overlap.1),
            changeDays: days,
            changes: changes
        )
    }

    /// The seven zones of issue #9, then thirteen more with other rules. Changes (tzdata,
    /// 2026–2035) given as local wall times.
    static let zones: [Zone] = [
        // Sun 02:45 → 03:45 (+12:45 → +13:45), Sun 03:45 → 02:45.
        zone("Pacific/Chatham", gap: (3, 0), overlap: (3, 30)),
        // Half-hour changes: Sun 02:00 → 02:30, Sun 02:00 → 01:30.
        zone("Australia/Lord_Howe", gap: (2, 15), overlap: (1, 45)),
        // At midnight: Sun 00:00 → 01:00; Sun 00:00 → Sat 23:00 (the overlap is on Saturday).
        zone("America/Santiago", gap: (0, 30), overlap: (23, 30), on: [6, 0]),
        // At midnight: Sun 00:00 → 01:00, Sun 01:00 → 00:00.
        zone("America/Havana", gap: (0, 0), overlap: (0, 30)),
        // Two hours: Sun 01:00 → 03:00, Sun 03:00 → 01:00.
        zone("Antarctica/Troll", gap: (1, 30), overlap: (2, 30)),
        // Negative daylight saving in tzdata (winter is the "saving"): 01:00 → 02:00, 02:00 → 01:00.
        zone("Europe/Dublin", gap: (1, 0), overlap: (1, 30)),
        // Around Ramadan: Sun 03:00 → 02:00 and Sun 02:00 → 03:00, at dates that move each year.
        zone("Africa/Casablanca", gap: (2, 0), overlap: (2, 30)),
        zone("Europe/Berlin", gap: (2, 30), overlap: (2, 0)),
        // 02:00 → 03:00, 02:00 → 01:00.
        zone("America/New_York", gap: (2, 30), overlap: (1, 30)),
        zone("Australia/Sydney", gap: (2, 30), overlap: (2, 45)),
        // No change since 2022.
        zone("Asia/Tehran", gap: (0, 0), overlap: (12, 30), on: [5], changes: false),
        // −03:30: 02:00 → 03:00, 02:00 → 01:00.
        zone("America/St_Johns", gap: (2, 30), overlap: (1, 30)),
        zone("Asia/Kolkata", gap: (5, 30), overlap: (23, 59), changes: false),
        // No change since 2021 (the zone skipped 30 Dec 2011).
        zone("Pacific/Apia", gap: (3, 0), overlap: (4, 0), changes: false),
        // At midnight: Fri 00:00 → 01:00; Fri 00:00 → Thu 23:00.
        zone("Africa/Cairo", gap: (0, 30), overlap: (23, 30), on: [4, 5]),
        // Saturdays: 02:00 → 03:00, 02:00 → 01:00.
        zone("Asia/Gaza", gap: (2, 30), overlap: (1, 30), on: [6]),
        zone("Europe/Chisinau", gap: (2, 30), overlap: (2, 15)),
        // At 01:00Z: Sat 23:00 → Sun 00:00, Sun 00:00 → Sat 23:00.
        zone("America/Nuuk", gap: (23, 30), overlap: (23, 45), on: [6]),
        zone("Pacific/Norfolk", gap: (2, 15), overlap: (2, 45)),
        zone("UTC", gap: (0, 0), overlap: (12, 0), changes: false),
    ]

    enum Kind {
        case interval, times, calendar, fixedHourCron, steppedHourCron
    }

    /// One loop of a zone's run.
    struct Plan {
        let kind: Kind
        let schedule: Schedule
        /// At least this many runs in the ten years, so the comparison cannot pass on nothing.
        let minimumRuns: Int
    }

    /// The loops of a zone: an interval that differs per zone (no two zones share a grid);
    /// the gap and overlap wall times as times of day (shifted by a gap, first pass of an
    /// overlap), as a calendar expression (skipped in a gap, first pass), as a cron entry with a
    /// fixed hour (end of the gap, first pass) and with a stepped hour (`a/24` is the hour `a`
    /// alone, but stepped: no run in the gap, both passes of the overlap).
    static func plans(for zone: Zone, index: Int) throws -> [Plan] {
        let timeZone = try #require(TimeZone(identifier: zone.name))
        let interval = 13 * 3600 + 13 * 60 + index
        let days = 3653
        let hours = Set([zone.gap.hour, zone.overlap.hour]).sorted()
        let minutes = Set([zone.gap.minute, zone.overlap.minute]).sorted()
        let combinations = hours.count * minutes.count
        let weeks = days / 7
        let names = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let calendarDays = zone.changeDays.map { names[$0] }.joined(separator: ",")
        let cronDays = zone.changeDays.map(String.init).joined(separator: ",")
        let hourList = hours.map(String.init).joined(separator: ",")
        let minuteList = minutes.map(String.init).joined(separator: ",")
        let steppedHours = hours.map { "\($0)/24" }.joined(separator: ",")
        let weeklyRuns = weeks * zone.changeDays.count * combinations
        return [
            Plan(kind: .interval, schedule: .every(.seconds(interval)), minimumRuns: days * 86_400 / interval),
            Plan(
                kind: .times,
                schedule: .times([
                    try TimeOfDay(hour: zone.gap.hour, minute: zone.gap.minute, timeZone: timeZone),
                    try TimeOfDay(hour: zone.overlap.hour, minute: zone.overlap.minute, timeZone: timeZone),
                ]),
                minimumRuns: 2 * days
            ),
            Plan(
                kind: .calendar,
                schedule: try .calendar("\(calendarDays) *-*-* \(hourList):\(minuteList):00 \(zone.name)"),
                minimumRuns: weeklyRuns - 40
            ),
            Plan(
                kind: .fixedHourCron,
                schedule: try .cron("\(minuteList) \(hourList) * * \(cronDays)", timeZone: timeZone),
                minimumRuns: weeklyRuns - 40
            ),
            Plan(
                kind: .steppedHourCron,
                schedule: try .cron("\(minuteList) \(steppedHours) * * \(cronDays)", timeZone: timeZone),
                minimumRuns: weeklyRuns - 40
            ),
        ]
    }

    /// What one body saw: the virtual wall time, `nextIteration` and `currentLoop`.
    struct Run {
        let now: Date
        let next: Date?
        let iteration: Int
    }

    final class RunLog: Sendable {
        private let runs = LockedValue<[Run]>([])
        func record(_ run: Run) { runs.withLock { $0.append(run) } }
        var all: [Run] { runs.withLock { $0 } }
    }

    /// `make test` runs the suite with `--no-parallel`: the zones run side by side here, each on
    /// its own clock, so that both cores of a CI machine are used.
    @Test("every run of every loop in twenty zones over ten years is the one fireDates(from:) predicts")
    func tenYearsInTwentyZones() async throws {
        let totals = try await withThrowingTaskGroup(of: Int.self) { group in
            for (index, zone) in Self.zones.enumerated() {
                group.addTask { try await Self.run(zone, index: index) }
            }
            return try await group.reduce(0, +)
        }
        // 20 zones × (6,630 interval + 7,306 times + 1,040–2,090 each for calendar and cron).
        #expect(totals >= 350_000, "only \(totals) runs compared")
    }

    /// Runs the loops of `zone` for ten virtual years, compares them with the prediction and
    /// returns the number of runs compared.
    static func run(_ zone: Zone, index: Int) async throws -> Int {
        let plans = try plans(for: zone, index: index)
        let clock = VirtualClock(wallTime: start)
        var loops: [Loop] = []
        var logs: [RunLog] = []
        for plan in plans {
            let log = RunLog()
            let loop = try Loop(schedule: plan.schedule, clock: clock.loopClock) { loop in
                log.record(Run(now: clock.now, next: loop.nextIteration, iteration: loop.currentLoop))
            }
            loops.append(loop)
            logs.append(log)
        }
        for loop in loops { try loop.start() }
        await clock.advance(to: end)
        for loop in loops { loop.cancel() }
        await clock.settle()

        var compared = 0
        for (plan, log) in zip(plans, logs) {
            let runs = log.all
            compared += runs.count
            // The prediction: every instant up to the end, and the next one (the last body's
            // nextIteration).
            var expected: [Date] = []
            for date in plan.schedule.fireDates(from: start) {
                expected.append(date)
                if date > end { break }
            }
            let label = "\(zone.name) \(plan.kind) (\(plan.schedule))"
            #expect(runs.count >= plan.minimumRuns, "\(label): only \(runs.count) runs")
            if let problem = firstDifference(runs: runs, expected: expected, exact: plan.kind != .interval) {
                Issue.record("\(label): \(problem)")
            }
        }
        try checkCoverage(zone, plans: plans, logs: logs)
        return compared
    }

    @Test("the comparison reports a missing, extra, duplicated, out-of-order or late run and a wrong nextIteration or currentLoop")
    func comparisonFindsEachKindOfDifference() {
        // Three predicted runs an hour apart, then one after the end of the run.
        let slots = (0..<3).map { Self.start.addingTimeInterval(Double($0) * 3600) }
        let expected = slots + [Self.end.addingTimeInterval(3600)]
        let good = (0..<3).map { Run(now: slots[$0], next: expected[$0 + 1], iteration: $0) }
        func problem(_ runs: [Run]) -> String {
            Self.firstDifference(runs: runs, expected: expected, exact: true) ?? "none"
        }
        #expect(problem(good) == "none")
        #expect(problem(Array(good.prefix(2))).hasPrefix("missing run 2"))
        #expect(problem(good + [Run(now: slots[2].addingTimeInterval(60), next: nil, iteration: 3)]).hasPrefix("extra run 3"))
        #expect(problem([good[0], good[1], good[1]]).contains("is not after run 1"))
        #expect(problem([good[0], good[2], good[1]]).contains("is not after run 1"))
        let late = Run(now: slots[1].addingTimeInterval(0.001), next: expected[2], iteration: 1)
        #expect(problem([good[0], late, good[2]]).hasPrefix("run 1 at"))
        let wrongNext = Run(now: slots[1], next: expected[3], iteration: 1)
        #expect(problem([good[0], wrongNext, good[2]]).contains("saw nextIteration"))
        let wrongIteration = Run(now: slots[1], next: expected[2], iteration: 0)
        #expect(problem([good[0], wrongIteration, good[2]]).contains("saw currentLoop 0"))
        // Intervals are compared within 1 µs, wall-clock schedules exactly.
        let nearNext = Run(now: slots[1], next: expected[2].addingTimeInterval(5e-7), iteration: 1)
        #expect(problem([good[0], nearNext, good[2]]).contains("saw nextIteration"))
        #expect(Self.firstDifference(runs: [good[0], nearNext, good[2]], expected: expected, exact: false) == nil)
    }

    /// The first way `runs` differ from the prediction `expected`, or nil. Each run must be at
    /// its predicted instant (virtual time counts nanoseconds, a `Date` is a `Double`: within
    /// 1 µs), see the next predicted instant as `nextIteration` (wall-clock schedules give the
    /// schedule's own `Date`: exactly) and count its iteration; whatever the prediction, runs
    /// must be strictly increasing.
    static func firstDifference(runs: [Run], expected: [Date], exact: Bool) -> String? {
        let predicted = expected.filter { $0 <= end }
        for (index, pair) in zip(runs, runs.dropFirst()).enumerated() where !(pair.0.now < pair.1.now) {
            return "run \(index + 1) at \(iso(pair.1.now)) is not after run \(index) at \(iso(pair.0.now))"
        }
        for index in 0..<max(runs.count, predicted.count) {
            guard index < runs.count else {
                return "missing run \(index) at \(iso(predicted[index])) (\(predicted.count - runs.count) missing in all)"
            }
            guard index < predicted.count else {
                return "extra run \(index) at \(iso(runs[index].now)) (\(runs.count - predicted.count) extra in all)"
            }
            let run = runs[index]
            if abs(run.now.timeIntervalSince(predicted[index])) > 1e-6 {
                return "run \(index) at \(iso(run.now)), predicted \(iso(predicted[index]))"
                    + (index > 0 ? " after \(iso(predicted[index - 1]))" : "")
            }
            if run.iteration != index {
                return "run \(index) at \(iso(run.now)) saw currentLoop \(run.iteration)"
            }
            let nextPredicted = index + 1 < expected.count ? expected[index + 1] : nil
            let nextMatches: Bool
            switch (run.next, nextPredicted) {
            case (nil, nil): nextMatches = true
            case (let seen?, let want?): nextMatches = exact ? seen == want : abs(seen.timeIntervalSince(want)) <= 1e-6
            default: nextMatches = false
            }
            if !nextMatches {
                return "run \(index) at \(iso(run.now)) saw nextIteration \(run.next.map(iso) ?? "nil"), "
                    + "predicted \(nextPredicted.map(iso) ?? "nil")"
            }
        }
        return nil
    }

    /// The runs went through the zone's changes, as the table says: in a zone with changes,
    /// some times of day were shifted by a gap (a run at neither wall time) and the stepped-hour
    /// cron ran a wall time twice on one date (both passes of an overlap), about once a year;
    /// in a zone without changes, neither happened.
    static func checkCoverage(_ zone: Zone, plans: [Plan], logs: [RunLog]) throws {
        let timeZone = try #require(TimeZone(identifier: zone.name))
        func local(_ date: Date) -> (day: Int, minute: Int) {
            let seconds = Int(date.timeIntervalSince1970.rounded(.down)) + timeZone.secondsFromGMT(for: date)
            let day = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
            return (day, (seconds - day * 86_400) / 60)
        }
        let wallMinutes = Set([zone.gap, zone.overlap].map { $0.hour * 60 + $0.minute })
        let timesRuns = try #require(zip(plans, logs).first { $0.0.kind == .times }?.1.all)
        let shifted = timesRuns.filter { !wallMinutes.contains(local($0.now).minute) }.count
        let steppedRuns = try #require(zip(plans, logs).first { $0.0.kind == .steppedHourCron }?.1.all)
        var seen = Set<Int>()
        var repeated = 0
        for run in steppedRuns {
            let (day, minute) = local(run.now)
            if !seen.insert(day * 1440 + minute).inserted { repeated += 1 }
        }
        if zone.changes {
            #expect(shifted >= 9, "\(zone.name): \(shifted) times of day shifted by a gap in ten years")
            #expect(repeated >= 9, "\(zone.name): \(repeated) wall times run twice by the stepped-hour cron in ten years")
        } else {
            #expect(shifted == 0 && repeated == 0, "\(zone.name) has no changes, yet \(shifted) shifted and \(repeated) repeated runs")
        }
    }

    static func iso(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
