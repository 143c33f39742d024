/// Validation of relative intervals and schedules, shared by the initializers and
/// `changeInterval`, so bad input always gets the same ``LoopError``.
enum RelativeInterval {
    /// The longest interval the timer core can represent: Int64 nanoseconds, about 292 years.
    static let maximumSeconds = Double(Int64.max / 1_000_000_000)

    /// `seconds + 60·minutes + 3600·hours` as a `Duration`; only the total must be ≥ 0 (as in
    /// disnake), each part must be finite.
    static func validate(seconds: Double, minutes: Double, hours: Double) throws -> Duration {
        for (name, value) in [("seconds", seconds), ("minutes", minutes), ("hours", hours)] where !value.isFinite {
            throw LoopError(.invalidInterval, "\(name) must be finite, got \(value)")
        }
        let total = seconds + minutes * 60 + hours * 3600
        guard !total.isNaN else {
            // Finite parts whose products overflow with opposite signs: inf − inf.
            throw LoopError(
                .invalidInterval,
                "interval is not a number: seconds + 60·minutes + 3600·hours overflows "
                    + "(seconds: \(seconds), minutes: \(minutes), hours: \(hours))"
            )
        }
        guard total.isFinite, total <= maximumSeconds else {
            throw LoopError(
                .invalidInterval,
                "interval must be at most \(Int64(maximumSeconds)) s (about 292 years), got \(total) s "
                    + "(seconds: \(seconds), minutes: \(minutes), hours: \(hours))"
            )
        }
        guard total >= 0 else {
            throw LoopError(
                .invalidInterval,
                "interval must not be negative, got \(total) s (seconds: \(seconds), minutes: \(minutes), hours: \(hours))"
            )
        }
        return .nanoseconds(Int64((total * 1e9).rounded()))
    }

    /// Checks what `Schedule`'s non-throwing factories could not, and that a schedule read in
    /// the local zone has one (`TZ` naming no zone `TimeZone` can hold is an error, not UTC).
    static func validate(_ schedule: Schedule) throws {
        try schedule.checkSystemZone()
        switch schedule.kind {
        case .every(let rule):
            let interval = rule.interval
            guard interval >= .zero else {
                throw LoopError(.invalidInterval, "interval must not be negative, got \(interval)")
            }
            guard interval.seconds <= maximumSeconds else {
                throw LoopError(
                    .invalidInterval,
                    "interval must be at most \(Int64(maximumSeconds)) s (about 292 years), got \(interval)"
                )
            }
        case .times(let rule):
            guard !rule.times.isEmpty else {
                throw LoopError(.invalidTimeOfDay, "times must not be empty")
            }
        case .calendar, .cron, .custom:
            break
        }
    }
}
