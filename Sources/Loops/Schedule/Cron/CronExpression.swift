import Foundation

/// A parsed 5-field cron expression.
// PLACEHOLDER: the parser lands with the wall-clock schedules issue.
struct CronExpression: Hashable, Sendable {
    let text: String

    init(parsing text: String, timeZone: TimeZone?) throws {
        throw LoopError(.invalidSchedule, "cron expressions are not supported yet: \(text)")
    }

    func nextFire(onOrAfter date: Date) -> Date? {
        nil
    }
}
