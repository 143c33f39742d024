package import Foundation

extension Schedule {
    /// 10000-01-01T00:00:00Z, where every schedule ends: no schedule has an instant at or after
    /// it, so every instant is at most 9999-12-31T23:59:59.999999Z and
    /// prints as `YYYY-MM-DDTHH:MM:SS.ffffffZ` with a four-digit year. (A `Date` there is
    /// precise to about 30 µs, so the last representable one is 9999-12-31T23:59:59.999969Z.)
    /// Calendar expressions end earlier, after 2199, as systemd's do.
    package static let endOfInstants = Date(timeIntervalSinceReferenceDate: 252_423_993_600)
}
