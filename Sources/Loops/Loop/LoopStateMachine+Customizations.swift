extension LoopStateMachine {
    /// The hooks and test overrides of a loop. Most loops register none, so they live in one
    /// object made at the first registration instead of in every loop's state (five closures,
    /// 80 bytes). Immutable: a registration makes a new object, so copies of a state machine
    /// never see each other's registrations.
    final class Customizations: Sendable {
        struct Values: Sendable {
            var beforeLoop: Hook?
            var afterLoop: Hook?
            var onError: ErrorHook?
            var jitter: (@Sendable (Double) -> Double)?
            var randomDelay: (@Sendable (Int64) -> Int64)?
        }

        private let values: Values

        var beforeLoop: Hook? { values.beforeLoop }
        var afterLoop: Hook? { values.afterLoop }
        var onError: ErrorHook? { values.onError }
        var jitter: (@Sendable (Double) -> Double)? { values.jitter }
        var randomDelay: (@Sendable (Int64) -> Int64)? { values.randomDelay }

        /// `previous`'s values (none when nil) with `change` applied.
        init(_ previous: Customizations?, changing change: (inout Values) -> Void) {
            var values = previous?.values ?? Values()
            change(&values)
            self.values = values
        }
    }
}
