/// disnake's `ExponentialBackoff` with full jitter: the n-th consecutive failure waits a
/// uniformly random time in [0, 2^n] s, n = 1…10. It resets after a success, or when 2048 s
/// have passed since the previous failure.
struct Backoff {
    static let maximumExponent = 10
    static let resetAfterNanoseconds: Int64 = 2048 * 1_000_000_000

    // 12 bytes where an `Int` and an `Int64?` took 17 (24 with padding), in every loop.
    /// When the last failure was, on the interval clock; `Int64.min` before the first.
    private var lastFailure = Int64.min
    private var exponent: Int32 = 0

    /// The delay before the next retry, in nanoseconds, for a failure at `now`.
    /// `jitter(upper)` returns a value in `0...upper` (seconds).
    mutating func delay(now: Int64, jitter: (Double) -> Double) -> Int64 {
        if lastFailure != .min, now.subtractingClamped(lastFailure) > Self.resetAfterNanoseconds {
            exponent = 0
        }
        lastFailure = now
        exponent = min(exponent + 1, Int32(Self.maximumExponent))
        let upper = Double(1 << exponent)
        let seconds = min(max(jitter(upper), 0), upper)
        return Int64(seconds * 1e9)
    }

    mutating func reset() {
        exponent = 0
        lastFailure = .min
    }
}
