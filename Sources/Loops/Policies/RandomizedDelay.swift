/// A random delay added to each scheduled iteration, with the semantics of systemd's
/// `RandomizedDelaySec=` (and, ``fixed(upTo:)``, `FixedRandomDelay=yes`): it spreads the
/// iterations of many loops or many machines that share a schedule.
///
/// The delay moves when an iteration runs, never the grid: iteration n is still scheduled at
/// its slot (which `nextIteration` reports), and the slot after it is counted from the slot,
/// not from the delayed run. A delay longer than the gap between two slots makes the next slot a
/// missed one, which the loop's ``MissedTickPolicy`` resolves. The first iteration of an
/// interval loop that runs at start is delayed too; an iteration that is already late (an
/// overrun) is not delayed further.
public struct RandomizedDelay: Hashable, Sendable, CustomStringConvertible {
    /// The longest delay.
    public let maximum: Duration
    /// Whether every iteration gets the same delay, derived from the loop's name.
    public let isFixed: Bool

    /// A delay drawn uniformly from `0...maximum` for each iteration (`RandomizedDelaySec=`).
    public static func upTo(_ maximum: Duration) -> RandomizedDelay {
        RandomizedDelay(maximum: maximum, isFixed: false)
    }

    /// The same delay in `0...maximum` for every iteration, a stable function of the loop's
    /// name (FNV-1a of its UTF-8 bytes): the same on every restart and on every machine, and
    /// different for loops of different names (`RandomizedDelaySec=` with
    /// `FixedRandomDelay=yes`; systemd also mixes in the machine ID, which this does not).
    public static func fixed(upTo maximum: Duration) -> RandomizedDelay {
        RandomizedDelay(maximum: maximum, isFixed: true)
    }

    /// E.g. `up to 30 s` or `fixed, up to 30 s`.
    public var description: String {
        (isFixed ? "fixed, up to " : "up to ") + "\(maximum)"
    }

    /// Checks the maximum (a ``LoopError`` names a negative one) and returns it in nanoseconds.
    func validatedMaximum() throws -> Int64 {
        guard maximum >= .zero else {
            throw LoopError(.invalidOption, "randomizedDelay must not be negative, got \(maximum)")
        }
        let (seconds, attoseconds) = maximum.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow, case (let total, false) = whole.addingReportingOverflow(attoseconds / 1_000_000_000) else {
            throw LoopError(.invalidOption, "randomizedDelay must be at most 292 years, got \(maximum)")
        }
        return total
    }

    /// The fixed delay of the loop named `name`, in `0...maximum` nanoseconds.
    static func fixedOffset(name: String, maximum: Int64) -> Int64 {
        guard maximum > 0 else { return 0 }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return Int64(hash % (UInt64(maximum) + 1))
    }
}
