import Foundation

extension Schedule {
    /// Whether the schedule reads the system's zone: a calendar expression without a zone
    /// suffix (or with the local zone's abbreviation), a cron expression without a zone.
    package var readsSystemZone: Bool {
        switch kind {
        case .calendar(let expression):
            switch expression.spec.zone {
            case .local, .localAbbreviation: return true
            default: return false
            }
        case .cron(let expression):
            return expression.timeZone == nil
        default:
            return false
        }
    }

    /// Checks, for a schedule that reads the system's zone, that `TZ` (when set) names a zone
    /// `TimeZone` can represent, so that the schedule never computes silently in UTC or in the
    /// machine's zone instead (see ``SystemTimeZone/check(tz:)``). Called when a ``Loop`` is
    /// created with the schedule or switched to it, and by the `loops` tool.
    ///
    /// - Throws: ``LoopError`` `.invalidTimeZone` naming the value of `TZ`, e.g.
    ///   "TZ='EST5EDT,M3.2.0,M11.1.0' is a POSIX rule string; loops needs a zone name such as
    ///   America/New_York or Europe/Berlin".
    package func checkSystemZone() throws(LoopError) {
        guard readsSystemZone else { return }
        try SystemTimeZone.checkLocalZone()
    }
}
