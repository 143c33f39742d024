/// The task a run executes in, kept so that `cancel()` can cancel it: the one `start()`
/// returned, or the one `run()` awaits.
///
/// An enum of the two task types rather than a cancelling closure: one reference instead of
/// two words, in every run (the executing run lives in every loop's state).
enum RunTask: Sendable {
    /// A task of `start()` or `restart()`; the loop's public `task`.
    case started(Task<Void, Never>)
    /// The task `run()` awaits.
    case awaited(Task<RunOutcome, Never>)

    /// Cancels the task.
    func cancel() {
        switch self {
        case .started(let task): task.cancel()
        case .awaited(let task): task.cancel()
        }
    }
}
