import Foundation

extension Schedule {
    /// For ``every(_:)`` with a positive interval: the instants at whole multiples of the
    /// interval since 1970-01-01T00:00:00Z on the wall clock (every 5 s: :00, :05, :10…); other
    /// schedules are returned as they are.
    ///
    /// A loop with a ``RunStore`` counts its interval this way: a slot must be the same instant
    /// in a restarted process and in every replica, which a grid anchored at each `start()`
    /// could not be.
    var alignedToEpoch: Schedule {
        guard let interval = interval?.seconds, interval > 0 else { return self }
        return .custom("every \(interval) s from the epoch") { date in
            Self.epochMultiple(of: interval, onOrAfter: date)
        }
    }

    /// The first whole multiple of `interval` seconds since 1970 at or after `date`.
    ///
    /// Computed as `Date(timeIntervalSince1970: k × interval)`, the same way for every caller,
    /// and compared as `Date`s: a slot given back is that very `Date`, and the `Date` just after
    /// it (`strictlyLater`, one step of the reference-date `Double`, which
    /// `timeIntervalSince1970` would round away) gives the next multiple.
    static func epochMultiple(of interval: Double, onOrAfter date: Date) -> Date? {
        func slot(_ multiple: Double) -> Date { Date(timeIntervalSince1970: multiple * interval) }
        var multiple = (date.timeIntervalSince1970 / interval).rounded(.up)
        guard multiple.isFinite else { return nil }
        while slot(multiple) < date { multiple += 1 }
        while slot(multiple - 1) >= date { multiple -= 1 }
        let instant = slot(multiple)
        return instant.timeIntervalSince1970.isFinite ? instant : nil
    }
}
