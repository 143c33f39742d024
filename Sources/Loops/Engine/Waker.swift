import CLoopsCore

/// Lets another thread end a loop's sleep early without cancelling the loop's task: `stop()`
/// ends a sleep at once, `changeInterval` re-arms it, and the run's one cancellation handler
/// ends it when the task is cancelled. A wake that arrives while no sleep is in progress stays
/// pending and ends the next sleep at once, so a wake is never lost between the loop reading
/// its state and going to sleep.
///
/// A reference to a ``WakerBuffer``, whose header is the waker's ``Cell`` (its lock word and
/// state): a loop's waker lives in the loop's ``LoopStorage``, beside the loop's state machine
/// (an allocation of its own cost every loop 64 bytes). Copies share the cell.
package struct Waker: @unchecked Sendable {
    /// What ends the sleep in progress.
    fileprivate enum Interrupt {
        /// A kernel timer's sleep: no allocation per sleep, which a closure would cost.
        case timer(ClockTimer, WakeToken)
        /// Any other engine's (virtual time's). Boxed: both cases then begin with an object
        /// reference, whose spare bits hold the case, and a waker's state is 16 bytes, not 17.
        case action(Action)

        final class Action {
            let run: @Sendable () -> Void
            init(_ run: @escaping @Sendable () -> Void) { self.run = run }
        }

        /// Whether it ended a sleep: a kernel timer's action is left armed when its sleep ends
        /// by its deadline, and then finds nothing to end.
        func callAsFunction() -> Bool {
            switch self {
            case .timer(let timer, let token):
                return timer.interrupt(token)
            case .action(let action):
                action.run()
                return true
            }
        }
    }

    fileprivate enum State {
        case idle
        case pending
        case armed(Interrupt)
    }

    /// The waker's state and the lock word that guards it, and the lock word of the state
    /// machine that shares the waker's allocation (unused in a standalone waker's): 24 bytes,
    /// where a lock word of the state machine's own, after the cell, took 8 more.
    struct Cell {
        fileprivate var state = State.idle
        fileprivate var lock: UInt32 = 0
        var companionLock: UInt32 = 0
    }

    private let buffer: WakerBuffer

    /// A waker with a buffer of its own, which holds no state machine.
    package init() {
        buffer = unsafeDowncast(WakerBuffer.create(minimumCapacity: 0) { _ in Cell() }, to: WakerBuffer.self)
    }

    /// The waker whose cell is `buffer`'s header.
    init(_ buffer: WakerBuffer) {
        self.buffer = buffer
    }

    private func withLock<Result>(_ body: (inout State) -> Result) -> Result {
        // The pointer leaves the closure: the header lives in the buffer, which never moves and
        // outlives the call.
        let cell = buffer.withUnsafeMutablePointerToHeader { $0 }
        let lock = cell.pointer(to: \.lock)!
        cloops_lock(lock)
        defer { cloops_unlock(lock) }
        return body(&cell.pointee.state)
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
    fileprivate func takeArmedOrLeavePending() -> Interrupt? {
        withLock { state in
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
        arm(.action(Interrupt.Action(interrupt)))
    }

    /// ``arm(_:)`` for a sleep on `timer`: the wake calls `timer.interrupt(token)`.
    package func arm(_ timer: ClockTimer, _ token: WakeToken) -> Bool {
        arm(.timer(timer, token))
    }

    fileprivate func arm(_ interrupt: Interrupt) -> Bool {
        withLock { state in
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
        withLock { state in
            if case .armed = state { state = .idle }
        }
    }
}

/// The allocation a waker's cell lives in: a `ManagedBuffer` whose header is the cell. A
/// loop's (``LoopStorageBuffer``) holds the loop's state machine as its one element, behind the
/// cell's `companionLock`; a standalone waker's holds none. (Typed with the state machine so
/// that one class serves both, and a waker is one reference, as the engines pass it.)
class WakerBuffer: ManagedBuffer<Waker.Cell, LoopStateMachine> {}

/// Names a sleep for ``ClockTimer/interrupt(_:)``: a deadline heap's handle.
package struct WakeToken: Sendable {
    let slot: Int32
    let ticket: UInt32
}
