import Foundation

/// A parsed systemd calendar event.
// PLACEHOLDER: the parser lands with the wall-clock schedules issue.
struct CalendarExpression: Hashable, Sendable {
    let text: String

    init(parsing text: String) throws {
        throw LoopError(.invalidSchedule, "calendar expressions are not supported yet: \(text)")
    }

    func nextFire(onOrAfter date: Date) -> Date? {
        nil
    }
}
