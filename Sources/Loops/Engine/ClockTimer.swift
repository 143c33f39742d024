
/// The sleepers of one clock and the one timerfd that wakes them.
///
/// This type owns the deadline heap and the arming of the fd, and knows nothing about who
/// waits for the fd to become readable: ``SystemEngine`` does it with a `DispatchSourceRead`,
/// a precision mode can do it from an `epoll_wait` thread. Either reader calls
/// ``handleReadable(reusing:)``, which resumes the sleepers it releases outside the lock, as
/// everything that resumes continuations here does (the shape of swift-service-lifecycle's
/// `UnixSignalsSequence`: the locked state returns an action, the caller performs it).
///
/// The timerfd is armed at the earliest deadline only, and re-armed only when that earliest
/// deadline changes, so n sleepers cost one fd and at most one wakeup per distinct deadline.
package final class ClockTimer: Sendable {
    /// What a suspended sleeper is resumed with.
    package typealias Continuation = UnsafeContinuation<WakeReason, any Error>

    /// A suspended task in the heap: 8 bytes. Its waker is not kept: a sleeper is never
    /// disarmed (a wake that finds it gone stays pending, see ``Waker/wake()``), which spares
    /// every tick the waker's lock and the reference's retain and release.
    package struct Sleeper: Sendable {
        /// Resumes the task.
        let continuation: Continuation

        /// Resumes the sleeping task.
        func resume(with result: Result<WakeReason, any Error>) {
            continuation.resume(with: result)
        }
    }

    private typealias Handle = DeadlineHeap<Sleeper>.Handle

    /// The sleepers a clock step, a zone change or a failure releases, to be resumed outside
    /// the lock. (The sleepers a wake finds due go into the reader's own buffer instead: see
    /// ``handleReadable(reusing:)``.)
    package struct WakeBatch: Sendable {
        /// `.realtime` sleepers woken because the wall clock was set (or the zone changed).
        package var stepped: [Sleeper] = []
        /// Sleepers that cannot be woken reliably any more, and why.
        package var failed: [Sleeper] = []
        /// The error `failed` sleepers are resumed with.
        package var failure: LoopError?

        /// Resumes every sleeper of the batch. Call it without holding any lock.
        package func resume() {
            for sleeper in stepped { sleeper.resume(with: .success(.clockStepped)) }
            if !failed.isEmpty {
                let error = failure ?? LoopError(.systemTimer, "the system timer failed")
                for sleeper in failed { sleeper.resume(with: .failure(error)) }
            }
        }
    }

    /// What the fd is armed at, mirrored so that it is re-armed only when the earliest
    /// deadline changes.
    private enum Arming {
        case disarmed
        case armed(Int64)
        /// After ECANCELED or an error: arm afresh whatever the heap holds.
        case unknown
    }

    /// Whether the fd is still open.
    private enum Lifecycle {
        case open
        /// `reason` is the failure that closed it (nil for a plain close): later sleeps fail
        /// with it too.
        case closed(reason: LoopError?)
    }

    private struct State: ~Copyable {
        var heap = DeadlineHeap<Sleeper>()
        var arming = Arming.disarmed
        /// `.closed` once the fd is closed: later sleeps fail instead of touching a reused
        /// number.
        var lifecycle = Lifecycle.open
        /// How many times the kernel reported a step of the wall clock (ECANCELED).
        var clockSteps = 0
        /// How many changes of the system's time zone woke the sleepers.
        var zoneChanges = 0
        /// When the fd was last handled; the next arm is at least `minimumWakeSpacing` later.
        var lastWake = Int64.min
    }

    /// The clock the fd counts on.
    package let clock: EngineClock
    /// The timerfd. Readers register it with their poller; only this type reads and arms it,
    /// and ``close()`` closes it.
    package let descriptor: Int32
    /// The shortest time between two wakes of the fd, in nanoseconds.
    ///
    /// With many sleepers whose deadlines are microseconds apart (100,000 loops spread over a
    /// second), one wake per deadline costs a kernel round trip and a thread wakeup each; the
    /// spacing batches the deadlines of such a stretch into one wake, at the price of at most
    /// this much extra lateness. Deadlines further apart than the spacing (any single loop)
    /// are not affected. A deadline is never woken early either way.
    package let minimumWakeSpacing: Int64
    private let state: LockedValue<State>

    /// The default ``minimumWakeSpacing``: 250 µs.
    package static let defaultWakeSpacing: Int64 = 250_000

    /// Creates the timerfd of `clock`.
    package init(clock: EngineClock, minimumWakeSpacing: Int64 = ClockTimer.defaultWakeSpacing) throws(LoopError) {
        self.clock = clock
        self.minimumWakeSpacing = max(0, minimumWakeSpacing)
        self.descriptor = try TimerCore.create(clock)
        self.state = LockedValue(State())
    }

    /// The current time on this clock, in nanoseconds.
    package var now: Int64 { TimerCore.now(clock) }

    /// The number of suspended sleepers.
    package var sleeperCount: Int { state.withLock { $0.heap.count } }

    /// How many steps of the wall clock this timer has handled (for tests).
    package var clockStepCount: Int { state.withLock { $0.clockSteps } }

    /// How many changes of the system's time zone this timer has handled (for tests).
    package var zoneChangeCount: Int { state.withLock { $0.zoneChanges } }

    /// The deadline the fd is armed at, nil when disarmed (for tests).
    package var armedDeadline: Int64? {
        state.withLock { state in
            if case .armed(let deadline) = state.arming { return deadline }
            return nil
        }
    }

    /// Suspends the calling task until `deadline` on this clock, or until `waker` is woken.
    ///
    /// Returns at once, without suspending, when the deadline has already been reached;
    /// returns `.interrupted` at once when `waker` has a wake pending; throws
    /// `CancellationError` at once when the task is already cancelled.
    nonisolated(nonsending) package func sleep(until deadline: Int64, waker: Waker? = nil) async throws -> WakeReason {
        try Task.checkCancellation()
        guard let handle = reserve(until: deadline, waker: waker) else {
            return deadline <= now ? .deadlineReached : .interrupted
        }
        return try await withTaskCancellationHandler {
            try await suspend(until: deadline, at: handle, waker: waker)
        } onCancel: {
            remove(handle, resumingWith: .failure(CancellationError()))
        }
    }

    /// Suspends the calling task until `deadline` on this clock, or until `waker` is woken —
    /// with no cancellation handler of its own: the caller guarantees that a cancellation of
    /// its task wakes `waker` (a loop's run does, with one handler for the whole run), and
    /// checks for cancellation when this returns `.interrupted`. Spares each sleep the
    /// registration of a handler and its async frames.
    ///
    /// The sleeper is inserted and `waker` armed under one acquisition of the timer's lock
    /// (the handler-less sleep needs no handle before it suspends): a wake pending before that
    /// interrupts the sleep at once, one after it finds the sleeper in the heap. Returns at
    /// once when the deadline has already been reached, and `.interrupted` at once when the
    /// task was cancelled before the sleep began (the cancellation woke `waker`).
    ///
    /// Never inlined: inlined into a loop's run, its continuation's context would become part
    /// of the run's frame, which also lives while the body runs (a precision-mode loop then
    /// needs a second 1-KB slab of the task allocator). `waker` is consumed: a caller that made
    /// it for the call keeps nothing in its frame to release once the sleep is over.
    @inline(never)
    nonisolated(nonsending) package func sleep(until deadline: Int64, interruptedBy waker: consuming Waker) async throws -> WakeReason {
        try await suspend(until: deadline, at: nil, waker: waker)
    }

    /// Suspends the calling task as a sleeper until it is resumed: the sleeper reserved at
    /// `reservation`, or, with none, a new one whose `waker` is armed as it is inserted.
    ///
    /// The stdlib's `withUnsafeThrowingContinuation(isolation:)` hops to its isolation on
    /// entry; for a task with an executor preference (precision mode) every hop looks the
    /// preferred executor up under the task's status lock (~300 instructions a tick). This
    /// function is `nonisolated(nonsending)`: it already runs on its caller's isolation, and the
    /// compiler hops back to it after the await, so the entry hop does nothing for us.
    @inline(__always)
    nonisolated(nonsending) private func suspend(until deadline: Int64, at reservation: Handle?, waker: Waker?) async throws -> WakeReason {
        try await _unsafeInheritExecutor_withUnsafeThrowingContinuation { (continuation: Continuation) in
            enqueue(Sleeper(continuation: continuation), until: deadline, at: reservation, waker: waker)
        }
    }

    /// A handle for a sleep until `deadline` with `waker` armed, or nil when there is nothing to
    /// wait for (the deadline has passed, or the waker fired already). Out of line, so that its
    /// temporaries stay off the sleeping task's async frame.
    @inline(never)
    private func reserve(until deadline: Int64, waker: Waker?) -> Handle? {
        if deadline <= now { return nil }
        let handle = state.withLock { $0.heap.reserve() }
        if let waker, !waker.arm(self, handle.token) {
            state.withLock { _ = $0.heap.remove(handle) }
            return nil
        }
        return handle
    }

    /// Inserts a sleeper and arms the fd if it is now the earliest: at `reservation` (whose
    /// waker was armed when it was reserved), or, with none, at a new handle with `waker` armed
    /// for it.
    ///
    /// Out of line: it runs inside the continuation's closure, and inlined there its
    /// temporaries (the clock read's `timespec`) became part of the sleeping task's frame.
    @inline(never)
    private func enqueue(_ sleeper: Sleeper, until deadline: Int64, at reservation: Handle?, waker: Waker?) {
        let result: Result<WakeReason, any Error>? = state.withLock { state in
            // As `reserve` does for a reserved sleep: a deadline already reached needs no wait.
            if reservation == nil, deadline <= now { return .success(.deadlineReached) }
            // The cancellation handler of a reserved sleep may have run before this point (it
            // runs at once when the task is cancelled while entering
            // `withTaskCancellationHandler`) and then found no entry to remove. The task's flag
            // is set before the handler runs, and this check and the handler both hold the
            // lock, so one of the two always sees the other. A sleep without a reservation
            // needs no check: its caller's handler wakes its waker, whose pending wake makes
            // the arm below fail.
            if let reservation, Task.isCancelled {
                state.heap.remove(reservation)
                return .failure(CancellationError())
            }
            if case .closed(let reason) = state.lifecycle {
                if let reservation { state.heap.remove(reservation) }
                // The failure that closed the timer (epoll_wait on the engine's thread) says more
                // than "closed", and is what the sleepers already asleep were failed with.
                return .failure(reason ?? Self.closedError(clock))
            }
            let handle: Handle
            if let reservation {
                // The waker's action gives the reservation back when it runs before this point,
                // so a failed insert means the sleep was interrupted before it began.
                guard state.heap.insert(deadline: deadline, payload: sleeper, at: reservation) else {
                    return .success(.interrupted)
                }
                handle = reservation
            } else {
                handle = state.heap.insert(deadline: deadline, payload: sleeper)
                // Armed under the timer's lock: the waker's action takes this lock to remove
                // the sleeper, so it finds it. (The waker's own lock is taken inside this one,
                // never the other way round: a wake calls its action after releasing it.)
                if let waker, !waker.arm(self, handle.token) {
                    state.heap.remove(handle)
                    return .success(.interrupted)
                }
            }
            do throws(LoopError) {
                try syncArm(&state)
            } catch {
                state.heap.remove(handle)
                return .failure(error)
            }
            return nil
        }
        if let result { sleeper.resume(with: result) }
    }

    /// The waker's action: ends the sleep of `token` with `.interrupted`.
    /// Returns whether the sleeper was still asleep.
    func interrupt(_ token: WakeToken) -> Bool {
        remove(Handle(token), resumingWith: .success(.interrupted))
    }

    /// Removes a sleeper (cancelled or interrupted) and resumes it with `result`, unless a wake
    /// already popped it: then that wake resumes it, so the sleeper resumes exactly once.
    /// Returns whether the sleep was still to end (in the heap, or reserved).
    @discardableResult
    private func remove(_ handle: Handle, resumingWith result: Result<WakeReason, any Error>) -> Bool {
        let (sleeper, ended): (Sleeper?, Bool) = state.withLock { state in
            // A reservation counts: the sleep it was made for will not begin (its insert fails).
            let held = state.heap.holds(handle)
            let removed = state.heap.remove(handle)
            if removed != nil {
                // A failed re-arm only costs an early wake that re-arms again; the removed
                // sleeper must not see a timer error.
                try? syncArm(&state)
            }
            return (removed, held)
        }
        sleeper?.resume(with: result)
        return ended
    }

    /// Handles a readable fd: reads it, releases every sleeper whose deadline has passed (all
    /// of them with `.clockStepped` when the wall clock was set), re-arms at the new earliest
    /// deadline, and resumes the released sleepers once the lock is released.
    ///
    /// - Parameter buffer: an empty array whose capacity the sleepers due reuse, so that a wake
    ///   costs no allocation; empty again on return.
    package func handleReadable(reusing buffer: inout [Sleeper]) {
        // The sleepers due go straight into `buffer`; a batch exists only when a clock step or
        // a failure releases sleepers, which spares every other wake building and destroying one.
        let released: WakeBatch? = state.withLock { state in
            guard case .open = state.lifecycle else { return nil }
            let now = now
            state.lastWake = now
            var released: WakeBatch?
            // Reading under the lock keeps read, pop and re-arm atomic with respect to arms by
            // new sleepers, so the mirror `arming` stays exact.
            switch TimerCore.read(descriptor, clock) {
            case .expired:
                // A one-shot timer that expired is disarmed.
                state.arming = .disarmed
                state.heap.popAll(dueAt: now, into: &buffer)
            case .notExpired:
                state.heap.popAll(dueAt: now, into: &buffer)
            case .clockStepped:
                // Every wall-clock deadline was computed from the old time: wake them all so
                // their owners recompute. The kernel state after ECANCELED is not worth
                // mirroring; forget it and arm afresh.
                state.arming = .unknown
                state.clockSteps += 1
                var batch = WakeBatch()
                state.heap.removeAll(into: &batch.stepped)
                released = batch
            case .failed(let error):
                // The fd no longer tells us when to wake: fail the sleepers (their loops report
                // the error) rather than leave them asleep forever.
                state.arming = .unknown
                var batch = WakeBatch(failure: error)
                state.heap.removeAll(into: &batch.failed)
                released = batch
            }
            do throws(LoopError) {
                try syncArm(&state)
            } catch {
                var batch = released ?? WakeBatch()
                state.heap.removeAll(into: &batch.failed)
                batch.failure = batch.failure ?? error
                released = batch
            }
            return released
        }
        for sleeper in buffer { sleeper.resume(with: .success(.deadlineReached)) }
        buffer.removeAll(keepingCapacity: true)
        released?.resume()
    }

    /// The system's time zone changed: releases every sleeper, as a step of the wall clock
    /// does, so that deadlines computed for a local time in the old zone are recomputed. The
    /// kernel reports no ECANCELED for this; the engine's zone watcher calls it. Resume the
    /// returned batch outside any lock.
    ///
    /// - Parameter isRepeat: true for the engine's second wake shortly after a change (for a
    ///   sleeper that computed its deadline in the old zone just before the first one), which
    ///   is not counted in ``zoneChangeCount``.
    package func handleZoneChange(isRepeat: Bool = false) -> WakeBatch {
        state.withLock { state in
            var batch = WakeBatch()
            guard case .open = state.lifecycle else { return batch }
            if !isRepeat { state.zoneChanges += 1 }
            state.heap.removeAll(into: &batch.stepped)
            do throws(LoopError) {
                // Nobody is left: disarm.
                try syncArm(&state)
            } catch {
                // Not worth failing anyone over: the fd fires early at worst, and re-arms then.
                state.arming = .unknown
            }
            return batch
        }
    }

    /// Closes the fd and fails any sleeper still waiting, and every later one, with `error`
    /// (default: "the timer was closed"). Call it once the reader no longer watches the fd (for
    /// Dispatch: from the source's cancel handler).
    package func close(failingSleepersWith error: LoopError? = nil) {
        let batch: WakeBatch = state.withLock { state in
            var batch = WakeBatch()
            guard case .open = state.lifecycle else { return batch }
            state.lifecycle = .closed(reason: error)
            state.arming = .disarmed
            TimerCore.close(descriptor)
            state.heap.removeAll(into: &batch.failed)
            batch.failure = error ?? Self.closedError(clock)
            return batch
        }
        batch.resume()
    }

    /// Arms the fd at the earliest deadline, or disarms it when nobody sleeps, unless it is
    /// armed there already.
    ///
    /// Called with the lock held, deliberately: two threads that each computed a new earliest
    /// deadline and then called timerfd_settime outside the lock could apply their arms in the
    /// opposite order, leaving the fd armed at the later deadline and the earlier sleeper late.
    private func syncArm(_ state: inout State) throws(LoopError) {
        // A pure function of the heap and `lastWake`, so that calling this again without a
        // change computes the same target and does not re-arm.
        let target = state.heap.minimumDeadline.map { max($0, state.lastWake &+ minimumWakeSpacing) }
        switch (state.arming, target) {
        case (.disarmed, nil):
            return
        case (.armed(let armed), .some(let target)) where armed == target:
            return
        case (_, .some(let target)):
            try TimerCore.arm(descriptor, clock, at: target)
            state.arming = .armed(target)
        case (_, nil):
            try TimerCore.disarm(descriptor, clock)
            state.arming = .disarmed
        }
    }

    private static func closedError(_ clock: EngineClock) -> LoopError {
        LoopError(.systemTimer, "the timer of \(TimerCore.kernelName(clock)) was closed")
    }
}
