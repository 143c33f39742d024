import Foundation

/// What ``Schedule/validSlot(after:)`` found.
struct SlotSearch: Equatable {
    /// The first instant the schedule gave that is strictly after the floor; nil when the
    /// schedule has no more instants, or gave none after the floor however far ahead it was asked.
    var slot: Date?
    /// The first instant the schedule gave that was not after the floor; nil when it behaved.
    var rejected: Date?
}

extension Schedule {
    /// How far past the floor ``validSlot(after:)`` asks again after a rejected instant: 1 µs,
    /// 2 µs, 4 µs, … 2^55 µs (about 1,140 years), then it gives up.
    static let reprobeOffsets: [TimeInterval] = (0...55).map { Double(UInt64(1) << $0) / 1e6 }

    /// The schedule's next instant strictly after `floor` (the last scheduled instant), never one
    /// at or before it, even from a schedule that misbehaves: defence in depth for the loop.
    ///
    /// The schedule is asked for its first instant after `floor`. An answer that is not after
    /// `floor` is rejected (the first such answer is returned in ``SlotSearch/rejected``, so the
    /// caller can report it) and the schedule is asked again from further and further past
    /// `floor` (``reprobeOffsets``): asking the same question again would get the same answer
    /// from a pure schedule, and the instants skipped this way are ones the schedule itself
    /// failed to give. The first answer after `floor` is the slot; when the schedule answers nil,
    /// or never answers after `floor`, it is treated as having no more instants.
    ///
    /// Pure when the schedule is. Intervals are returned unchecked: an interval of 0 repeats its
    /// instant by design.
    func validSlot(after floor: Date) -> SlotSearch {
        guard isWallClock else { return SlotSearch(slot: nextFire(after: floor), rejected: nil) }
        var rejected: Date?
        var offsets = Self.reprobeOffsets.makeIterator()
        var question = floor
        while let answer = nextFire(after: question) {
            if answer > floor { return SlotSearch(slot: answer, rejected: rejected) }
            if rejected == nil { rejected = answer }
            guard let offset = offsets.next() else { break }
            question = floor.addingTimeInterval(offset)
        }
        return SlotSearch(slot: nil, rejected: rejected)
    }
}

extension Date {
    /// ISO 8601 in UTC with milliseconds (`2026-03-02T01:00:00.000Z`), for log lines.
    var iso8601: String {
        formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
