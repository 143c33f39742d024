import Foundation

/// The rule behind ``Schedule/times(_:)``: daily slots, each read in its own zone.
///
/// Each slot is evaluated on its own and the earliest instant wins, so a list that mixes zones
/// never starves a slot (discord.py sorts such a list by wall time and loses slots; disnake spins).
/// Daylight saving follows Python's `fold=0`: a wall time inside a gap fires shifted forward by
/// the length of the gap (Berlin 02:30 on the spring-forward day fires at 03:30 CEST), a wall time
/// inside an overlap fires once, at its first occurrence.
struct TimesOfDayRule: Hashable, Sendable {
    /// The slots, duplicates removed, in the order given.
    let times: [TimeOfDay]

    init(_ times: [TimeOfDay]) {
        var seen = Set<TimeOfDay>()
        self.times = times.filter { seen.insert($0).inserted }
    }

    /// The earliest slot instant at or after `date`; `nil` for an empty list, a date outside
    /// the supported range, or when the slot instant would be 10000-01-01T00:00:00Z or later
    /// (see ``Schedule/endOfInstants``).
    func nextFire(onOrAfter date: Date) -> Date? {
        let reference = date.timeIntervalSinceReferenceDate
        guard WallClock.supportedRange.contains(reference), date < Schedule.endOfInstants else { return nil }
        let wholeSeconds = Int64(reference.rounded(.down)) + WallClock.referenceOffset
        var best: Date?
        for time in times {
            guard let candidate = Self.nextFire(of: time, onOrAfter: date, wholeSeconds: wholeSeconds) else { continue }
            if best.map({ candidate < $0 }) ?? true {
                best = candidate
            }
        }
        return best.flatMap { $0 < Schedule.endOfInstants ? $0 : nil }
    }

    /// The earliest instant of one slot at or after `date`. The slot is tried on the local dates
    /// around `date` (one before, for an overlap that carries a date's slot past midnight, to two
    /// after, for a whole skipped day).
    private static func nextFire(of time: TimeOfDay, onOrAfter date: Date, wholeSeconds: Int64) -> Date? {
        let zone = time.timeZone
        let localNow = wholeSeconds + WallClock.offset(zone, atUnix: wholeSeconds)
        let today = WallClock.floorDivide(localNow, 86_400)
        let secondOfDay = Int64(time.hour * 3600 + time.minute * 60 + time.second)
        var best: Date?
        for day in (today - 1)...(today + 2) {
            let local = day * 86_400 + secondOfDay
            let instant = WallClock.resolve(local: local, in: zone).firstOrShifted
            let candidate = WallClock.date(unixSeconds: instant, nanosecond: time.nanosecond)
            if candidate >= date, best.map({ candidate < $0 }) ?? true {
                best = candidate
            }
        }
        return best
    }
}
