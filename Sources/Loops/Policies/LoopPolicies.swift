/// The policies of a loop, validated once at creation: what the state machine and the run
/// read instead of the public option types.
struct LoopPolicies: Sendable {
    /// A randomized delay in nanoseconds: drawn per slot from `0...maximum`, or `fixedOffset`.
    struct Delay: Sendable {
        let maximum: Int64
        let fixedOffset: Int64?
    }

    var failure = FailurePolicy.endLoop
    var firstIteration = FirstIteration.atStart
    var delay: Delay?
    /// The per-iteration timeout in nanoseconds.
    var timeout: Int64?

    init() {}

    /// - Throws: ``LoopError`` (`.invalidOption`) for a timeout that is not positive or too
    ///   long, or a negative randomized delay.
    init(
        name: String,
        timeout: Duration?,
        onFailure: FailurePolicy,
        randomizedDelay: RandomizedDelay?,
        firstIteration: FirstIteration
    ) throws {
        self.failure = onFailure
        self.firstIteration = firstIteration
        if let timeout {
            guard timeout > .zero else {
                throw LoopError(.invalidOption, "timeout must be positive, got \(timeout)")
            }
            let (seconds, attoseconds) = timeout.components
            let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
            guard !overflow, case (let total, false) = whole.addingReportingOverflow(attoseconds / 1_000_000_000) else {
                throw LoopError(.invalidOption, "timeout must be at most 292 years, got \(timeout)")
            }
            self.timeout = max(total, 1)
        }
        if let randomizedDelay {
            let maximum = try randomizedDelay.validatedMaximum()
            if maximum > 0 {
                delay = Delay(
                    maximum: maximum,
                    fixedOffset: randomizedDelay.isFixed ? RandomizedDelay.fixedOffset(name: name, maximum: maximum) : nil
                )
            }
        }
    }
}
