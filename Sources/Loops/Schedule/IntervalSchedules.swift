/// Interval schedules made once per distinct interval, so that loops with the same interval
/// share one.
///
/// A ``Schedule``'s kind is an indirect enum: each value made anew is a 64-byte box of its
/// own, which every interval loop kept as long as it lived (80 bytes of heap per loop) although
/// most programs use a handful of intervals. Copies of one value share its box, so handing out
/// copies of a remembered value costs nothing per loop. At most ``capacity`` intervals are
/// remembered (the first ones made, never evicted): a program that makes a new interval for
/// every loop gets a box per loop, as before, and the cache stays small.
enum IntervalSchedules {
    /// The interval's parts, compared by their bits: `0.1 + 0.2` and `0.3` are distinct parts
    /// that a loop reports as given.
    private struct Key: Hashable {
        let interval: Duration
        let seconds: UInt64
        let minutes: UInt64
        let hours: UInt64
    }

    static let capacity = 64

    private static let remembered = LockedValue([Key: Schedule]())

    /// A schedule of kind `.every(rule)`: a copy of the one made first for the same parts.
    static func schedule(for rule: IntervalRule, making make: (IntervalRule) -> Schedule) -> Schedule {
        let key = Key(
            interval: rule.interval,
            seconds: rule.seconds.bitPattern,
            minutes: rule.minutes.bitPattern,
            hours: rule.hours.bitPattern
        )
        return remembered.withLock { remembered in
            if let schedule = remembered[key] { return schedule }
            let schedule = make(rule)
            if remembered.count < capacity { remembered[key] = schedule }
            return schedule
        }
    }
}
