
/// Lets another thread end a loop's sleep early without cancelling the loop's task: `stop()`
/// ends a sleep at once, `changeInterval` re-arms it, and the run's one cancellation handler
/// ends it when the task is cancelled. A wake that arrives while no sleep is in progress stays
/// pending and ends the next sleep at once, so a wake is never lost between the loop reading
/// its state and going to sleep.
///
/// A struct around its lock: copies share one state (an object of its own, around the lock,
/// cost every loop 32 bytes).
package struct Waker: Sendable {
    /// What ends the sleep in progress.
    private enum Interrupt {
        /// A kernel timer's sleep: no allocation per sleep, which a closure would cost.
        case timer(ClockTimer, WakeToken)
        /// Any other engine's (virtual time's).
        case action(@Sendable () -> Void)

        /// Whether it ended a sleep: a kernel timer's action is left armed when its sleep ends
        /// by its deadline, and then finds nothing to end.
        func callAsFunction() -> Bool {
            switch self {
            case .timer(let timer, let token):
                return timer.interrupt(token)
            case .action(let action):
                action()
                return true
            }
        }
    }

    private enum State {
        case idle
        case pending
        case armed(Interrupt)
    }

    private let state: LockedValue<State>

    package init() {
        state = LockedValue(.idle)
    }

    /// Ends the sleep in progress, or the next one.
    package func wake() {
        // An armed action may be stale: a kernel timer does not disarm a sleeper it wakes at its
        // deadline (a lock less on every tick), so the action then finds nothing to end. The
        // wake is then pending for the next sleep, unless that sleep was armed in the
        // meantime: then it ends that one (at worst a re-decision the loop did not need).
        while let interrupt = takeArmedOrLeavePending() {
            if interrupt() { return }
        }
    }

    /// The armed action, taken; or nil, with a wake left pending.
    private func takeArmedOrLeavePending() -> Interrupt? {
        state.withLock { state in
            switch state {
            case .idle, .pending:
                state = .pending
                return nil
            case .armed(let interrupt):
                state = .idle
                return interrupt
            }
        }
    }

    /// Engine side, before suspending: installs the action that ends this sleep. Returns false
    /// (and consumes the pending wake) when a wake is pending: the sleep ends at once.
    package func arm(_ interrupt: @escaping @Sendable () -> Void) -> Bool {
        arm(.action(interrupt))
    }

    /// ``arm(_:)`` for a sleep on `timer`: the wake calls `timer.interrupt(token)`.
    package func arm(_ timer: ClockTimer, _ token: WakeToken) -> Bool {
        arm(.timer(timer, token))
    }

    private func arm(_ interrupt: Interrupt) -> Bool {
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

    /// Engine side, before resuming a sleeper for another reason: drops the action. Engines
    /// whose action reports that it found nothing to end (kernel timers) may skip it.
    package func disarm() {
        state.withLock { state in
            if case .armed = state { state = .idle }
        }
    }
}

/// Names a sleep for ``ClockTimer/interrupt(_:)``: a deadline heap's handle.
package struct WakeToken: Sendable {
    let slot: Int32
    let ticket: UInt32
}
