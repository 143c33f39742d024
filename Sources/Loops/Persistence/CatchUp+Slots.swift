import Foundation

extension CatchUp {
    /// The slots a loop runs at start to catch up: of `schedule`'s instants strictly after
    /// `last` (the last slot the store recorded) and strictly before `end` (where the run's own
    /// schedule begins), the latest one (``latest``) or the latest `limit` (``all(limit:)``),
    /// oldest first.
    ///
    /// Only the most recent slots matter, so the search walks a window before `end` that grows
    /// until it holds enough of them or reaches `last`: a per-second schedule down for a year
    /// costs a few thousand steps, not 31 million.
    func slots(of schedule: Schedule, after last: Date, before end: Date) -> [Date] {
        let wanted: Int
        switch self {
        case .none: return []
        case .latest: wanted = 1
        case .all(let limit): wanted = limit
        }
        // Interval slots are caught up on through their epoch-aligned form, a wall-clock
        // schedule; what is left is an interval of 0, which has no slots to miss.
        guard wanted > 0, last < end, schedule.isWallClock else { return [] }
        var window: TimeInterval = 3600
        while true {
            let floor = max(last, end.addingTimeInterval(-window))
            var found: [Date] = []
            var cursor = floor
            while let slot = schedule.validSlot(after: cursor).slot, slot < end {
                found.append(slot)
                if found.count >= 2 * wanted { found.removeFirst(found.count - wanted) }
                cursor = slot
            }
            if found.count >= wanted || floor == last { return Array(found.suffix(wanted)) }
            window *= 8
        }
    }
}
