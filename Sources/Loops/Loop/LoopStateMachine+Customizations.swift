import Foundation

extension LoopStateMachine {
    /// What few loops have: hooks, test overrides, the epoch-aligned schedule of a loop with
    /// a run store, the last misbehaving instant its schedule gave. They live in one object
    /// made when the first is set instead of in every loop's state (five closures, 80 bytes;
    /// the last two 16 more). Immutable: a change makes a new object, so copies of a state
    /// machine never see each other's changes.
    final class Customizations: Sendable {
        struct Values: Sendable {
            var beforeLoop: Hook?
            var afterLoop: Hook?
            var onError: ErrorHook?
            var jitter: (@Sendable (Double) -> Double)?
            var randomDelay: (@Sendable (Int64) -> Int64)?
            /// ``LoopStateMachine/decisionSchedule`` when it is not the schedule itself.
            var alignedSchedule: Schedule?
            /// The last instant the schedule gave that was not after the last scheduled one,
            /// in the executing run, so that the run reports each such instant once.
            var lastRejected: Date?
        }

        private let values: Values

        var beforeLoop: Hook? { values.beforeLoop }
        var afterLoop: Hook? { values.afterLoop }
        var onError: ErrorHook? { values.onError }
        var jitter: (@Sendable (Double) -> Double)? { values.jitter }
        var randomDelay: (@Sendable (Int64) -> Int64)? { values.randomDelay }
        var alignedSchedule: Schedule? { values.alignedSchedule }
        var lastRejected: Date? { values.lastRejected }

        /// `previous`'s values (none when nil) with `change` applied.
        init(_ previous: Customizations?, changing change: (inout Values) -> Void) {
            var values = previous?.values ?? Values()
            change(&values)
            self.values = values
        }
    }
}
