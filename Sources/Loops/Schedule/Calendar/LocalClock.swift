import Foundation

/// Turns local times into instants the way glibc's `mktime` does, because systemd's search
/// relies on its choices:
/// - a local time inside a spring-forward gap moves forward by the gap (to the side that has
///   daylight saving);
/// - a repeated local time resolves with the offset of the previous conversion (glibc keeps
///   it as its first guess), so a search that starts before or in the first pass stays in
///   the first pass, and one that starts in the second pass stays in the second;
/// - a forced daylight-saving flag borrows the offset of the nearest time having that flag.
struct LocalClock {
    /// `nil` computes in UTC (`timegm`).
    private let zone: TimeZone?
    /// glibc's `localtime_offset`: the offset that resolved the previous local time.
    private var guessedOffset: Int

    init(zone: TimeZone?, startingAt instant: Int64) {
        self.zone = zone
        guessedOffset = 0
        guessedOffset = offset(at: instant)
    }

    func offset(at instant: Int64) -> Int {
        guard let zone else { return 0 }
        return zone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(instant)))
    }

    func isDaylightSaving(at instant: Int64) -> Bool {
        guard let zone else { return false }
        return zone.isDaylightSavingTime(for: Date(timeIntervalSince1970: TimeInterval(instant)))
    }

    /// The local time of `instant`, with its actual daylight-saving flag.
    func civilTime(at instant: Int64) -> CivilTime {
        CivilTime(localSeconds: instant + Int64(offset(at: instant)),
                  daylightSaving: isDaylightSaving(at: instant) ? 1 : 0)
    }

    /// `mktime`: the instant of `time` (normalizing out-of-range fields) and the normalized
    /// local time of that instant.
    mutating func resolve(_ time: CivilTime) -> (instant: Int64, time: CivilTime) {
        let local = time.localSeconds
        guard zone != nil else {
            return (local, CivilTime(localSeconds: local, daylightSaving: 0))
        }
        var instant = local - Int64(guessedOffset)
        var previous: Int64?
        var converged = false
        var gap: (Int64, Int64)?
        for _ in 0..<8 {
            let next = local - Int64(offset(at: instant))
            if next == instant {
                converged = true
                break
            }
            if next == previous {
                gap = (instant, next)
                break
            }
            previous = instant
            instant = next
        }
        if let (one, other) = gap {
            instant = chooseInGap(one, other, request: time.daylightSaving)
        } else if converged, time.daylightSaving >= 0,
                  isDaylightSaving(at: instant) != (time.daylightSaving == 1) {
            instant = borrowOffset(for: local, near: instant, daylightSaving: time.daylightSaving == 1) ?? instant
        }
        guessedOffset = Int(local - instant)
        return (instant, civilTime(at: instant))
    }

    /// In a gap both readings are off by the gap; glibc prefers the one whose DST flag differs
    /// from the request, or with no request the one that has daylight saving.
    private func chooseInGap(_ one: Int64, _ other: Int64, request: Int) -> Int64 {
        let oneDST = isDaylightSaving(at: one)
        let otherDST = isDaylightSaving(at: other)
        if oneDST != otherDST {
            if request < 0 { return oneDST ? one : other }
            return oneDST != (request == 1) ? one : other
        }
        return max(one, other)
    }

    /// glibc's search for a time with the requested DST flag: weekly probes, alternating
    /// backwards and forwards, up to about 17 years away; its offset then reads `local`.
    private func borrowOffset(for local: Int64, near instant: Int64, daylightSaving: Bool) -> Int64? {
        let stride: Int64 = 601_200
        let bound: Int64 = 536_454_000
        var delta = stride
        while delta < bound {
            for probe in [instant - delta, instant + delta] where isDaylightSaving(at: probe) == daylightSaving {
                return local - Int64(offset(at: probe))
            }
            delta += stride
        }
        return nil
    }
}
