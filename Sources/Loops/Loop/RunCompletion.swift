/// The end of one run of a loop, which the run accepted after it awaits.
///
/// Created when the run after it is admitted, inside the loop's lock (a run that nothing
/// awaits has none), so that the runs of a loop form one chain in the order they were
/// accepted — whichever threads call `start()`, `restart()` or `run()` concurrently. (Chaining
/// on the run's `Task` instead left a window between the admission and the task's creation in
/// which a second admission awaited the wrong run, and two runs overlapped.)
final class RunCompletion: Sendable {
    private enum State {
        case pending([UnsafeContinuation<Void, Never>])
        case finished
    }

    private let state = LockedValue(State.pending([]))

    /// Returns once ``finish()`` was called; at once if it already was. Not cancellable: a run
    /// must not begin while its predecessor still executes, cancelled or not.
    func wait() async {
        await withUnsafeContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                switch state {
                case .finished:
                    return true
                case .pending(var waiters):
                    waiters.append(continuation)
                    state = .pending(waiters)
                    return false
                }
            }
            if resumeNow { continuation.resume() }
        }
    }

    /// The run has finished (its `afterLoop` returned and the loop's state says so): resumes
    /// every waiter.
    func finish() {
        let waiters = state.withLock { state -> [UnsafeContinuation<Void, Never>] in
            guard case .pending(let waiters) = state else { return [] }
            state = .finished
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
