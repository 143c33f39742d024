import Foundation

@testable import Loops

/// An offset change of a zone as Foundation reports it (not through `WallClock`).
struct ZoneChange: Hashable, Sendable, CustomStringConvertible {
    let instant: Int64
    let before: Int64
    let after: Int64

    var description: String {
        "\(Date(timeIntervalSince1970: TimeInterval(instant))) \(before / 60)→\(after / 60) min"
    }
}

/// The zones of tzdata and their offset changes, read through Foundation alone.
enum ZoneCatalog {
    /// The canonical zones of `zone1970.tab` that Foundation can load.
    static func canonicalZones() -> [String] {
        guard let text = try? String(contentsOfFile: "/usr/share/zoneinfo/zone1970.tab", encoding: .utf8) else { return [] }
        var names: [String] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let columns = line.split(separator: "\t")
            guard columns.count >= 3 else { continue }
            let name = String(columns[2])
            if TimeZone(identifier: name) != nil { names.append(name) }
        }
        return names.sorted()
    }

    static func offset(_ zone: TimeZone, _ instant: Int64) -> Int64 {
        Int64(zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(instant))))
    }

    /// Every change of the UTC offset in `[from, to)`.
    static func changes(of zone: TimeZone, from: Int64, to: Int64) -> [ZoneChange] {
        var result: [ZoneChange] = []
        var date = Date(timeIntervalSince1970: TimeInterval(from))
        while let next = zone.nextDaylightSavingTimeTransition(after: date), next.timeIntervalSince1970 < TimeInterval(to) {
            let instant = Int64(next.timeIntervalSince1970.rounded())
            let before = offset(zone, instant - 1)
            let after = offset(zone, instant)
            if before != after { result.append(ZoneChange(instant: instant, before: before, after: after)) }
            date = next
        }
        return result
    }

    /// One zone for each distinct list of changes in `[from, to)` (zones that share every change
    /// are sampled once), with its changes.
    static func distinctZones(from: Int64, to: Int64) -> [(name: String, changes: [ZoneChange])] {
        var seen = Set<[ZoneChange]>()
        var result: [(String, [ZoneChange])] = []
        for name in canonicalZones() {
            guard let zone = TimeZone(identifier: name) else { continue }
            let list = changes(of: zone, from: from, to: to)
            if seen.insert(list).inserted { result.append((name, list)) }
        }
        return result
    }
}

/// Fire instants found by brute force: every minute of a window is converted to wall time with
/// Foundation's offset, and each rule is applied to that table literally. Independent of the
/// search code in `CalendarSearch`, `CronExpression` and `TimesOfDayRule` (only the parsed fields
/// are shared). Offsets and changes are whole minutes in the years the sweeps cover.
struct BruteForceWindow {
    let zone: TimeZone
    /// Instants (Unix seconds) of the minutes of the window, and their wall times as local seconds.
    let minutes: [Int64]
    let walls: [Int64]
    let start: Int64
    let end: Int64
    /// Each wall time's first minute in the window.
    let firstIndex: [Int64: Int]

    init(zone: TimeZone, from: Int64, to: Int64) {
        self.zone = zone
        start = CivilCalendar.floorDivide(from, 60) * 60
        end = to
        var minutes: [Int64] = []
        var walls: [Int64] = []
        var instant = start
        while instant < to {
            minutes.append(instant)
            walls.append(instant + ZoneCatalog.offset(zone, instant))
            instant += 60
        }
        self.minutes = minutes
        self.walls = walls
        var firstIndex: [Int64: Int] = [:]
        for (index, wall) in walls.enumerated() where firstIndex[wall] == nil {
            firstIndex[wall] = index
        }
        self.firstIndex = firstIndex
    }

    private func index(ofMinuteAtOrAfter instant: Int64) -> Int {
        Int(CivilCalendar.floorDivide(instant - start + 59, 60))
    }

    // MARK: Calendar expressions: matching wall times not before the wall time the search
    // starts at (a search never goes back in wall time); a repeated one fires at its first
    // occurrence at or after the start of the search; a missing one does not fire.

    /// The next fire at or after `from` (Unix seconds, microseconds), or nil past the window.
    func nextCalendar(_ spec: CalendarSpec, from: (second: Int64, microsecond: Int)) -> (second: Int64, microsecond: Int)? {
        let scanStart = max(Int(CivilCalendar.floorDivide(from.second - start, 60)), 0)
        // Wall minute → instant minutes already scanned (at or after the minute of `from`).
        var earlier: [Int64: [Int64]] = [:]
        let required = spec.zone.requiredDaylightSaving
        let startWall = (from.second + ZoneCatalog.offset(zone, from.second), from.microsecond)
        for index in scanStart..<minutes.count {
            let minute = minutes[index]
            let wall = walls[index]
            defer { earlier[wall, default: []].append(minute) }
            guard Self.matchesDateHourMinute(spec, wall: wall) else { continue }
            for microsecond in Self.matchingMicroseconds(spec.microseconds) {
                let second = minute + Int64(microsecond / 1_000_000)
                let candidate = (second, microsecond % 1_000_000)
                guard candidate >= from, (wall + Int64(microsecond / 1_000_000), microsecond % 1_000_000) >= startWall else { continue }
                let repeated = (earlier[wall] ?? []).contains { (($0 + Int64(microsecond / 1_000_000)), microsecond % 1_000_000) >= from }
                guard !repeated else { continue }
                // A local-abbreviation suffix: the first match of the other half of the year ends it.
                if let required, zone.isDaylightSavingTime(for: Date(timeIntervalSince1970: TimeInterval(minute))) != required {
                    return nil
                }
                return candidate
            }
        }
        return nil
    }

    static func matchesDateHourMinute(_ spec: CalendarSpec, wall: Int64) -> Bool {
        let days = CivilCalendar.floorDivide(wall, 86_400)
        let (year, month, day) = CivilCalendar.date(fromDays: days)
        let secondOfDay = Int(wall - days * 86_400)
        if let weekdays = spec.weekdays, weekdays & (1 << CivilCalendar.weekday(ofDays: Int(days))) == 0 { return false }
        guard contains(spec.years, year), contains(spec.months, month),
              contains(spec.hours, secondOfDay / 3600), contains(spec.minutes, secondOfDay / 60 % 60)
        else { return false }
        guard spec.endOfMonth, let list = spec.days else { return contains(spec.days, day) }
        let monthLength = WallClock.daysInMonth(year: Int64(year), month: month)
        for component in list {
            let first = monthLength - component.start + 1
            if let stop = component.stop {
                let other = monthLength - stop + 1
                let low = min(first, other)
                let high = max(first, other)
                let step = max(component.step, 1)
                if day >= low, day <= high, (day - low) % step == 0 { return true }
            } else if component.step > 0 {
                if day >= first, (day - first) % component.step == 0 { return true }
            } else if day == first {
                return true
            }
        }
        return false
    }

    static func contains(_ list: [CalendarComponent]?, _ value: Int) -> Bool {
        guard let list else { return true }
        return list.contains { component in
            if let stop = component.stop {
                let step = max(component.step, 1)
                return value >= component.start && value <= stop && (value - component.start) % step == 0
            }
            if component.step > 0 { return value >= component.start && (value - component.start) % component.step == 0 }
            return value == component.start
        }
    }

    /// The microseconds of a minute that the seconds field matches, in order.
    static func matchingMicroseconds(_ list: [CalendarComponent]?) -> [Int] {
        guard let list else { return [0] }
        var values = Set<Int>()
        for component in list {
            var value = component.start
            let limit = min(component.stop ?? Int.max, 60_000_000 - 1)
            while value <= limit {
                values.insert(value)
                guard component.step > 0 || component.stop != nil else { break }
                value += component.step > 0 ? component.step : 1_000_000
            }
        }
        return values.sorted()
    }

    // MARK: Cron, Vixie's rules.

    /// The next fire at or after `from` (Unix seconds), or nil past the window.
    func nextCron(_ cron: CronExpression, from: Int64) -> Int64? {
        func matches(_ wall: Int64) -> Bool {
            let days = CivilCalendar.floorDivide(wall, 86_400)
            let (year, month, day) = WallClock.civil(days: days)
            _ = year
            let secondOfDay = Int(wall - days * 86_400)
            guard cron.months.contains(month), cron.hours.contains(secondOfDay / 3600),
                  cron.minutes.contains(secondOfDay / 60 % 60) else { return false }
            let dom = cron.daysOfMonth.contains(day)
            let dow = cron.daysOfWeek.contains(WallClock.weekday(days: days))
            return cron.daysOfMonth.startsWithStar || cron.daysOfWeek.startsWithStar ? dom && dow : dom || dow
        }
        let scanStart = max(index(ofMinuteAtOrAfter: from), 1)
        for index in scanStart..<minutes.count {
            let wall = walls[index]
            if cron.followsElapsedTime {
                if matches(wall) { return minutes[index] }
                continue
            }
            // A fixed hour: a wall time fires at its first occurrence …
            let seenBefore = firstIndex[wall].map { $0 < index } ?? false
            if matches(wall), !seenBefore { return minutes[index] }
            // … and the wall times a gap skips fire once, when the gap ends.
            let previousWall = walls[index - 1]
            if wall - previousWall > 60 {
                var skipped = previousWall + 60
                while skipped < wall {
                    if matches(skipped) { return minutes[index] }
                    skipped += 60
                }
            }
        }
        return nil
    }

    // MARK: Times of day, Python's fold=0.

    /// The next fire at or after `from` of one time of day, or nil past the window.
    func nextTime(_ time: TimeOfDay, from: Date) -> Date? {
        let secondOfDay = Int64(time.hour * 3600 + time.minute * 60 + time.second)
        var best: Date?
        let firstDay = CivilCalendar.floorDivide(walls.first ?? 0, 86_400)
        let lastDay = CivilCalendar.floorDivide(walls.last ?? 0, 86_400)
        for day in firstDay...lastDay {
            let target = day * 86_400 + secondOfDay
            let targetMinute = CivilCalendar.floorDivide(target, 60) * 60
            var fire: Int64?
            if let index = firstIndex[targetMinute] {
                fire = minutes[index] + (target - targetMinute)
            } else {
                // In a gap: read the wall time with the offset in force before it.
                for index in 1..<walls.count where walls[index - 1] < targetMinute && targetMinute < walls[index] {
                    let before = walls[index - 1] - minutes[index - 1]
                    fire = target - before
                }
            }
            guard let fire else { continue }
            let date = WallClock.date(unixSeconds: fire, nanosecond: time.nanosecond)
            if date >= from, best.map({ date < $0 }) ?? true { best = date }
        }
        // Only trust an answer with a day of window after it.
        guard let best, best.timeIntervalSince1970 < TimeInterval(end - 86_400) else { return nil }
        return best
    }
}
