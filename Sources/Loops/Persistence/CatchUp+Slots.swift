import Foundation

extension CatchUp {
    /// The slots a loop runs at start to catch up: of `schedule`'s instants strictly after
    /// `last` (the last slot the store recorded) and strictly before `end` (where the run's own
    /// schedule begins), the latest one (``latest``) or the latest `limit` (``all(limit:)``),
    /// oldest first. Interval slots are caught up on through their epoch-aligned form, a
    /// wall-clock schedule; an interval of 0 has no slots to miss.
    func slots(of schedule: Schedule, after last: Date, before end: Date) -> [Date] {
        switch self {
        case .none: []
        case .latest: schedule.latestSlots(1, after: last, before: end)
        case .all(let limit): schedule.latestSlots(limit, after: last, before: end)
        }
    }
}
