/// One entry of a calendar field's comma-separated list: a value (`5`), a range (`5..9`), a
/// repetition (`5/10`) or a repeated range (`5..50/10`), as systemd.time(7) defines them.
///
/// Values are plain integers; for the seconds field they are microseconds, because systemd
/// rounds fractional seconds to six decimals.
struct CalendarComponent: Hashable, Sendable, Comparable {
    /// The first value (for `~` day fields: the n-th last day of the month).
    var start: Int
    /// The last value of a range, or `nil` when the component is open-ended.
    var stop: Int?
    /// The repetition step, or 0 when the component is a single value.
    var step: Int

    /// Orders as systemd sorts a list before dropping duplicates: by start, stop (open first),
    /// then step, so normalized forms and our search agree with `systemd-analyze`.
    static func < (lhs: CalendarComponent, rhs: CalendarComponent) -> Bool {
        if lhs.start != rhs.start { return lhs.start < rhs.start }
        let lhsStop = lhs.stop ?? -1
        let rhsStop = rhs.stop ?? -1
        if lhsStop != rhsStop { return lhsStop < rhsStop }
        return lhs.step < rhs.step
    }

    /// systemd's normalization: a range's stop is pulled back onto the last repetition, and a
    /// repetition that cannot happen even once, or a range of one value, becomes a single value.
    func normalized() -> CalendarComponent {
        var result = self
        if let stop = result.stop, stop > result.start, result.step > 0 {
            result.stop = stop - (stop - result.start) % result.step
        }
        if let stop = result.stop,
           (stop > result.start && result.start + result.step > stop) || stop == result.start {
            result.stop = nil
            result.step = 0
        }
        return result
    }

    /// The smallest value ≥ `value` that this component produces, given the field's actual
    /// `start`/`stop` (different from the stored ones for last-day-of-month fields). An
    /// open repetition may run past the field's range ("18:80"); the search then normalizes.
    static func smallestMatch(start: Int, stop: Int?, step: Int, atLeast value: Int) -> Int? {
        if start >= value { return start }
        guard step > 0 else { return nil }
        let steps = (value - start + step - 1) / step
        let candidate = start + step * steps
        if let stop, candidate > stop { return nil }
        return candidate
    }
}
