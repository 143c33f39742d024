/// The policies of a loop, validated once at creation: what the state machine and the run
/// read instead of the public option types.
struct LoopPolicies: Sendable {
    /// A randomized delay in nanoseconds: drawn per slot from `0...maximum`, or `fixedOffset`.
    struct Delay: Sendable {
        let maximum: Int64
        let fixedOffset: Int64?
    }

    /// The policies few loops set, boxed when one is (inline, they cost every loop 56 bytes).
    private struct Rare: Sendable {
        var delay: Delay?
        var timeout: Int64?
        var catchUp = CatchUp.none
    }

    // The 9-byte first iteration first, the one-byte fields in the bytes its alignment leaves.
    private(set) var firstIteration = FirstIteration.atStart
    private(set) var failure = FailurePolicy.endLoop
    /// Interval slots count from the Unix epoch on the wall clock: set for a loop with a run
    /// store (see ``Schedule/alignedToEpoch``).
    private(set) var alignsToEpoch = false
    private var rare: Boxed<Rare>?

    var delay: Delay? { rare?.value.delay }
    /// The per-iteration timeout in nanoseconds.
    var timeout: Int64? { rare?.value.timeout }
    /// What a loop with a run store runs, at start, of the slots it missed while down.
    var catchUp: CatchUp { rare?.value.catchUp ?? .none }

    init() {}

    /// - Throws: ``LoopError`` (`.invalidOption`) for a timeout that is not positive or too
    ///   long, or a negative randomized delay.
    init(
        name: String,
        timeout: Duration?,
        onFailure: FailurePolicy,
        randomizedDelay: RandomizedDelay?,
        firstIteration: FirstIteration,
        hasStore: Bool = false,
        catchUp: CatchUp = .none
    ) throws {
        self.failure = onFailure
        self.firstIteration = firstIteration
        if case .all(let limit) = catchUp, !(1...CatchUp.maximumLimit).contains(limit) {
            throw LoopError(.invalidOption, "catchUp: .all(limit:) must be between 1 and \(CatchUp.maximumLimit), got \(limit)")
        }
        var rare = Rare(catchUp: catchUp)
        self.alignsToEpoch = hasStore
        if let timeout {
            guard timeout > .zero else {
                throw LoopError(.invalidOption, "timeout must be positive, got \(timeout)")
            }
            let (seconds, attoseconds) = timeout.components
            let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
            guard !overflow, case (let total, false) = whole.addingReportingOverflow(attoseconds / 1_000_000_000) else {
                throw LoopError(.invalidOption, "timeout must be at most 292 years, got \(timeout)")
            }
            rare.timeout = max(total, 1)
        }
        if let randomizedDelay {
            let maximum = try randomizedDelay.validatedMaximum()
            if maximum > 0 {
                rare.delay = Delay(
                    maximum: maximum,
                    fixedOffset: randomizedDelay.isFixed ? RandomizedDelay.fixedOffset(name: name, maximum: maximum) : nil
                )
            }
        }
        if rare.delay != nil || rare.timeout != nil || rare.catchUp != .none { self.rare = Boxed(rare) }
    }
}
