public import Dispatch

/// A `TaskExecutor` that runs jobs on a `DispatchQueue`, so that a loop's body runs on the
/// queue a daemon already organises its work around:
///
/// ```swift
/// let queue = DispatchQueue(label: "com.example.cache")
/// let refresher = try Loop(seconds: 30, executor: DispatchQueueExecutor(queue)) { _ in
///     dispatchPrecondition(condition: .onQueue(queue))
///     refreshCache()
/// }
/// ```
///
/// On Linux `DispatchQueue` is not itself a `TaskExecutor`; this small wrapper is the bridge.
/// With a serial queue, the body never runs concurrently with other work on that queue; each
/// suspension point of the body may still let other queue items run in between, as with any
/// executor.
public final class DispatchQueueExecutor: TaskExecutor, Sendable {
    /// The queue jobs run on.
    public let queue: DispatchQueue

    /// An executor that runs jobs on `queue`.
    public init(_ queue: DispatchQueue) {
        self.queue = queue
    }

    /// Runs `job` asynchronously on ``queue``.
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
