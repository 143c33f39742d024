import Foundation

/// The rule behind ``Schedule/times(_:)``: daily slots, each in its own zone.
// PLACEHOLDER: the DST-correct computation lands with the wall-clock schedules issue.
struct TimesOfDayRule: Hashable, Sendable {
    /// The slots, duplicates removed, in the order given.
    let times: [TimeOfDay]

    init(_ times: [TimeOfDay]) {
        var seen = Set<TimeOfDay>()
        self.times = times.filter { seen.insert($0).inserted }
    }

    func nextFire(onOrAfter date: Date) -> Date? {
        nil
    }
}
