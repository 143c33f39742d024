import Foundation
import Testing

@testable import Loops

/// Walks the UTC-offset changes of every canonical zone of tzdata (`zone1970.tab`) from 2000 to
/// 2040 and compares times of day, cron and calendar schedules around each with independent
/// oracles: a brute-force minute scan (every kind) and `systemd-analyze calendar` (calendar
/// expressions, where it succeeds). Zones that share every change are sampled once.
///
/// `make test` runs a fixed sample: one change of every unusual shape (a change that is not of
/// one hour, not on the hour, or near midnight; the shape is its wall time and its size and
/// direction), and a seeded choice of 40 ordinary ones. `make zone-sweep` sets
/// `LOOPS_FULL_ZONE_SWEEP=1` and walks every change.
@Suite("Wall-clock schedules in every zone")
struct ZoneSweepTests {
    static let isFullSweep = ProcessInfo.processInfo.environment["LOOPS_FULL_ZONE_SWEEP"] == "1"
    static let sweepStart: Int64 = 946_684_800  // 2000-01-01
    static let sweepEnd: Int64 = 2_240_611_200  // 2041-01-01

    struct Case: Sendable, CustomStringConvertible {
        let zoneName: String
        let change: ZoneChange
        var description: String { "\(zoneName) \(change)" }

        /// A change whose wall times are unusual: not on the hour, at or across midnight, or
        /// not of one hour.
        var isUnusual: Bool {
            let wallBefore = change.instant + change.before
            let wallAfter = change.instant + change.after
            let onTheHour = wallBefore % 3600 == 0 && wallAfter % 3600 == 0
            let nearMidnight = [wallBefore, wallAfter].contains { (wall: Int64) -> Bool in
                let secondOfDay = (wall % 86_400 + 86_400) % 86_400
                return secondOfDay < 3600 || secondOfDay >= 23 * 3600
            }
            return !onTheHour || nearMidnight || abs(change.after - change.before) != 3600
        }
    }

    static func cases() -> [Case] {
        var all: [Case] = []
        for (name, changes) in ZoneCatalog.distinctZones(from: sweepStart, to: sweepEnd) {
            all += changes.map { Case(zoneName: name, change: $0) }
        }
        if isFullSweep { return all }
        var generator = SeededRandom(seed: 0x7A_0E5_2026)
        var unusual = all.filter(\.isUnusual)
        let ordinary = all.filter { !$0.isUnusual }
        // Every unusual shape at least once, then a seeded share of the rest.
        var sample: [Case] = []
        var seenShapes = Set<String>()
        unusual.shuffle(using: &generator)
        for item in unusual {
            // The shape of a change: the wall time it happens at and its size and direction.
            let shape = "\((item.change.instant + item.change.before) % 86_400)|\(item.change.after - item.change.before)"
            if seenShapes.insert(shape).inserted { sample.append(item) }
        }
                for _ in 0..<40 { sample.append(generator.pick(ordinary)) }
        return sample
    }

    @Test("every zone's offset changes: times, cron and calendar agree with brute force and systemd")
    func offsetChangesAgreeWithOracles() throws {
        let cases = Self.cases()
        #expect(cases.count >= (Self.isFullSweep ? 1000 : 60), "found \(cases.count) changes")
        var report = SweepReport()
        let analyze = CalendarOracleTests.analyzePath != nil
        for item in cases {
            let zone = try #require(TimeZone(identifier: item.zoneName))
            try Self.check(item, zone: zone, withSystemd: analyze, into: &report)
        }
        print("zone sweep: \(report.summary)")
        for deviation in report.systemdDeviations.prefix(Self.isFullSweep ? 1000 : 10) {
            print("systemd 252 deviation: \(deviation)")
        }
        for failure in report.failures.prefix(30) {
            Issue.record(Comment(rawValue: failure))
        }
        #expect(report.failures.isEmpty, "\(report.failures.count) disagreements")
        #expect(report.comparedFires > cases.count * 20)
        if analyze { #expect(report.systemdFires > cases.count * 20) }
    }

    /// The wall times a daily schedule is tried at around a change: the change's wall times on
    /// either side, the minutes next to them, and the middle of the gap or overlap.
    static func dailyWallTimes(around change: ZoneChange) -> [Int64] {
        let before = change.instant + change.before
        let after = change.instant + change.after
        let middle = (before + after) / 2 / 60 * 60
        let seconds = [before - 60, before, middle, after - 60, after, after + 60, before - 1800]
        var result: [Int64] = []
        for second in seconds {
            let ofDay = (second % 86_400 + 86_400) % 86_400
            if !result.contains(ofDay) { result.append(ofDay) }
        }
        return result
    }

    static func hhmm(_ secondOfDay: Int64) -> (hour: Int, minute: Int) {
        (Int(secondOfDay / 3600), Int(secondOfDay / 60 % 60))
    }

    static func check(_ item: Case, zone: TimeZone, withSystemd: Bool, into report: inout SweepReport) throws {
        let change = item.change
        let window = BruteForceWindow(zone: zone, from: change.instant - 2 * 86_400, to: change.instant + 3 * 86_400)
        // Bases: well before, just before, and just after the change (inside the second pass of
        // an overlap).
        let bases: [Int64] = (isFullSweep ? [change.instant - 86_400 - 420] : [])
            + [change.instant - 3 * 3600 - 7, change.instant - 1, change.instant + 61]
        // Daily schedules are followed into the next day; sub-daily ones for a few hours.
        let compareDailyUntil = change.instant + 30 * 3600
        let compareSubDailyUntil = change.instant + 6 * 3600
        let wallTimes = dailyWallTimes(around: change)
        let changeDay = CivilCalendar.floorDivide(change.instant + change.before, 86_400)
        let weekday = CivilCalendar.weekday(ofDays: Int(changeDay))
        let weekdayNames = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

        // Calendar expressions.
        var calendarTexts = ["*:0/15", "*:0/20", "*:0/30", "hourly", "*:30", "*:45"]
        for secondOfDay in wallTimes {
            let (hour, minute) = hhmm(secondOfDay)
            calendarTexts.append(String(format: "*-*-* %02d:%02d", hour, minute))
        }
        let (weeklyHour, weeklyMinute) = hhmm(wallTimes[1])
        calendarTexts.append(String(format: "%@ *-*-* %02d:%02d", weekdayNames[weekday], weeklyHour, weeklyMinute))
        calendarTexts = calendarTexts.map { "\($0) \(item.zoneName)" }
        for base in bases {
            for (number, text) in calendarTexts.enumerated() {
                let compareUntil = number < 6 ? compareSubDailyUntil : compareDailyUntil
                let expression = try CalendarExpression(parsing: text)
                let ours = ourFires(from: base, until: compareUntil, expression.nextFire(onOrAfter:))
                var oracle: [Int64] = []
                var threshold = (second: base, microsecond: 0)
                var oracleFollowing: Int64?
                while let fire = window.nextCalendar(expression.spec, from: threshold) {
                    guard fire.second < compareUntil else {
                        oracleFollowing = fire.second
                        break
                    }
                    oracle.append(fire.second)
                    threshold = (fire.second, fire.microsecond + 1)
                }
                report.compare("calendar '\(text)' base=\(base)", ours: ours, oracle: oracle, oracleFollowing: oracleFollowing, base: base)
            }
        }
        if withSystemd {
            try compareWithSystemd(calendarTexts, bases: [change.instant - 3 * 3600 - 7, change.instant + 61], change: change,
                                   window: window, into: &report)
        }

        // Cron, read in the zone.
        var cronTexts = ["*/15 * * * *", "*/20 * * * *", "0 * * * *", "30 * * * *", "45 * * * *", "0 */2 * * *"]
        for secondOfDay in wallTimes {
            let (hour, minute) = hhmm(secondOfDay)
            cronTexts.append("\(minute) \(hour) * * *")
            cronTexts.append("\(minute) \(hour),\((hour + 12) % 24) * * *")
        }
        cronTexts.append("\(weeklyMinute) \(weeklyHour) * * \((weekday + 1) % 7)")
        for base in bases {
            for (number, text) in cronTexts.enumerated() {
                let compareUntil = number < 6 ? compareSubDailyUntil : compareDailyUntil
                let expression = try CronExpression(parsing: text, timeZone: zone)
                let ours = ourFires(from: base, until: compareUntil, expression.nextFire(onOrAfter:))
                var oracle: [Int64] = []
                var from = base
                var oracleFollowing: Int64?
                while let fire = window.nextCron(expression, from: from) {
                    guard fire < compareUntil else {
                        oracleFollowing = fire
                        break
                    }
                    oracle.append(fire)
                    from = fire + 1
                }
                report.compare("cron '\(text)' \(item.zoneName) base=\(base)", ours: ours, oracle: oracle, oracleFollowing: oracleFollowing, base: base)
            }
        }

        // Times of day, one at a time and all together.
        let times = try wallTimes.map { secondOfDay in
            try TimeOfDay(hour: Int(secondOfDay / 3600), minute: Int(secondOfDay / 60 % 60), second: Int(secondOfDay % 60), timeZone: zone)
        }
        let compareUntil = compareDailyUntil
        for base in bases {
            for time in times + [nil] {
                let schedule = Schedule.times(time.map { [$0] } ?? times)
                let ours = ourFires(from: base, until: compareUntil, schedule.nextFire(onOrAfter:))
                var oracle: [Int64] = []
                var oracleFollowing: Int64?
                var from = WallClock.date(unixSeconds: base)
                while true {
                    let candidates = (time.map { [$0] } ?? times).compactMap { window.nextTime($0, from: from) }
                    guard let fire = candidates.min() else { break }
                    let second = Int64(fire.timeIntervalSince1970.rounded())
                    guard second < compareUntil else {
                        oracleFollowing = second
                        break
                    }
                    oracle.append(second)
                    from = fire.strictlyLater
                }
                report.compare("times \(time?.description ?? "all") base=\(base)", ours: ours, oracle: oracle,
                               oracleFollowing: oracleFollowing, base: base)
            }
        }
    }

    /// Our fire instants (whole seconds) from `base` until `end`, each next one asked strictly
    /// after the previous, and the first one at or after `end` (nil if the schedule ended).
    static func ourFires(from base: Int64, until end: Int64, _ nextFire: (Date) -> Date?) -> (fires: [Int64], following: Int64?) {
        var fires: [Int64] = []
        var next = nextFire(WallClock.date(unixSeconds: base))
        while let fire = next, fire.timeIntervalSince1970 < TimeInterval(end) {
            fires.append(Int64(fire.timeIntervalSince1970.rounded()))
            next = nextFire(fire.strictlyLater)
        }
        return (fires, next.map { Int64($0.timeIntervalSince1970.rounded()) })
    }

    /// Runs `systemd-analyze calendar` from each base (in parallel) and compares its next
    /// elapses with ours. systemd 252 resolves wall times through glibc's `mktime`, which near
    /// some changes skips a wall time that exists or fires a repeated one in its second pass;
    /// such a deviation is accepted only where the brute-force scan of the documented rule
    /// disagrees with systemd too, and its first differing instant lies within a day of the change.
    static func compareWithSystemd(_ texts: [String], bases: [Int64], change: ZoneChange, window: BruteForceWindow,
                                   into report: inout SweepReport) throws {
        let iterations = 6
        let outputs = LockedValue<[Int64: [String: AnalyzeResult?]]>([:])
        DispatchQueue.concurrentPerform(iterations: bases.count) { index in
            let base = bases[index]
            let result = try? CalendarOracleTests.runAnalyze(texts, base: base * 1_000_000 - 1, iterations: iterations, timeZone: "UTC")
            outputs.withLock { $0[base] = result ?? [:] }
        }
        for base in bases {
            let results = outputs.withLock { $0[base] } ?? [:]
            for text in texts {
                guard let result = results[text], let result, !result.gaveUp, !result.never else {
                    report.systemdGaveUp += 1
                    continue
                }
                let expression = try CalendarExpression(parsing: text)
                let ours = Array(try Schedule.calendar(text).fireDates(from: WallClock.date(unixSeconds: base)).prefix(result.fires.count))
                    .map { Int64($0.timeIntervalSince1970.rounded()) }
                report.systemdFires += result.fires.count
                guard ours != result.fires else { continue }
                var oracle: [Int64] = []
                var threshold = (second: base, microsecond: 0)
                while oracle.count < result.fires.count, let fire = window.nextCalendar(expression.spec, from: threshold),
                      fire.second < window.end - 86_400 {
                    oracle.append(fire.second)
                    threshold = (fire.second, fire.microsecond + 1)
                }
                let firstDifference = zip(ours, result.fires).first { $0 != $1 }.map { min($0, $1) }
                    ?? min(ours.last ?? 0, result.fires.last ?? 0)
                let line = "calendar '\(text)' base=\(base): ours \(ours.map(show)), systemd \(result.fires.map(show))"
                let systemdFollowsTheRule = Array(result.fires.prefix(oracle.count)) == oracle
                if systemdFollowsTheRule || abs(firstDifference - change.instant) > 86_400 {
                    report.failures.append(line)
                } else {
                    report.systemdDeviations.append(line)
                }
            }
        }
    }

    static func show(_ second: Int64) -> String {
        WallClock.date(unixSeconds: second).formatted(.iso8601)
    }
}

/// Tallies the sweep and describes each disagreement.
struct SweepReport {
    var comparedFires = 0
    var systemdFires = 0
    var systemdGaveUp = 0
    /// Where systemd 252 departs from its documented rule (see `compareWithSystemd`).
    var systemdDeviations: [String] = []
    var failures: [String] = []

    var summary: String {
        "\(comparedFires) fire times compared with brute force, \(systemdFires) with systemd-analyze "
            + "(\(systemdGaveUp) expressions where systemd found none or gave up, \(systemdDeviations.count) where it "
            + "departs from its rule near a change), \(failures.count) disagreements"
    }

    /// `ours.following` is our first fire at or after the horizon; every swept schedule is
    /// endless, so it must exist, and equal the oracle's when that lies inside the window.
    mutating func compare(_ context: String, ours all: (fires: [Int64], following: Int64?), oracle: [Int64],
                          oracleFollowing: Int64?, base: Int64) {
        let ours = all.fires
        switch (all.following, oracleFollowing) {
        case (nil, _):
            failures.append("\(context): the schedule ended after \(ours.map(ZoneSweepTests.show))")
        case (let following?, let expected?) where following != expected:
            failures.append("\(context): after the horizon ours \(ZoneSweepTests.show(following)), brute force \(ZoneSweepTests.show(expected))")
        default:
            break
        }
        comparedFires += oracle.count
        if ours != oracle {
            failures.append("\(context): ours \(ours.map(ZoneSweepTests.show)), brute force \(oracle.map(ZoneSweepTests.show))")
        }
        // Strictly increasing, never before the base.
        let sequence = ours + (all.following.map { [$0] } ?? [])
        for (earlier, later) in zip([base - 1] + sequence, sequence) where later <= earlier {
            failures.append("\(context): \(ZoneSweepTests.show(later)) does not follow \(ZoneSweepTests.show(earlier))")
        }
    }
}
