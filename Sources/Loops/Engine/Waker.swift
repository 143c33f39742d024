
/// Lets another thread end a loop's sleep early without cancelling the loop's task: `stop()`
/// ends a sleep at once, `changeInterval` re-arms it. A wake that arrives while no sleep is in
/// progress stays pending and ends the next sleep at once, so a wake is never lost between the
/// loop reading its state and going to sleep.
package final class Waker: Sendable {
    private enum State {
        case idle
        case pending
        case armed(@Sendable () -> Void)
    }

    private let state = LockedValue<State>(.idle)

    package init() {}

    /// Ends the sleep in progress, or the next one.
    package func wake() {
        let interrupt: (@Sendable () -> Void)? = state.withLock { state in
            switch state {
            case .idle, .pending:
                state = .pending
                return nil
            case .armed(let interrupt):
                state = .idle
                return interrupt
            }
        }
        interrupt?()
    }

    /// Engine side, before suspending: installs the action that ends this sleep. Returns false
    /// (and consumes the pending wake) when a wake is pending: the sleep ends at once.
    package func arm(_ interrupt: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { state in
            switch state {
            case .pending:
                state = .idle
                return false
            case .idle, .armed:
                state = .armed(interrupt)
                return true
            }
        }
    }

    /// Engine side, before resuming a sleeper for another reason: drops the action.
    package func disarm() {
        state.withLock { state in
            if case .armed = state { state = .idle }
        }
    }
}
