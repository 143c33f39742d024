import Foundation

extension Schedule {
    /// The latest `count` instants of this wall-clock schedule strictly after `floor` and
    /// strictly before `end`, oldest first; empty for ``every(_:)``, whose slots are counted from
    /// a run's start, not read from the schedule.
    ///
    /// Only the most recent instants matter, so the search walks a window before `end` (from
    /// `floor` when that is nearer) that grows until it holds enough of them or reaches `floor`: a
    /// per-second schedule a year behind costs a few thousand steps, not 31 million, and one a
    /// slot behind costs one or two.
    func latestSlots(_ count: Int, after floor: Date, before end: Date) -> [Date] {
        guard count > 0, floor < end, isWallClock else { return [] }
        var window: TimeInterval = 3600
        while true {
            let start = max(floor, end.addingTimeInterval(-window))
            var found: [Date] = []
            var cursor = start
            while let slot = validSlot(after: cursor).slot, slot < end {
                found.append(slot)
                if found.count >= 2 * count { found.removeFirst(found.count - count) }
                cursor = slot
            }
            if found.count >= count || start == floor { return Array(found.suffix(count)) }
            window *= 8
        }
    }
}
