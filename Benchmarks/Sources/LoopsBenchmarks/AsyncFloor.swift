import CBenchSupport
import Foundation
import Synchronization

/// The floor under any loop whose body is an async Swift function: one task that prefers a
/// thread of its own as its executor, suspended in a continuation that the thread resumes when
/// its timerfd expires (armed and read as the raw floor's, blocking). What it adds to the raw
/// floor is Swift concurrency's own part of a tick — the continuation, the resume, the job and
/// the call of an async body — with no state machine, no deadline heap and no epoll: what
/// precision mode adds above it is ours.
final class TimerThreadExecutor: TaskExecutor, @unchecked Sendable {
    private let jobs = Mutex<[UnownedJob]>([])
    /// Written by the task before it suspends, read by the thread after the task's job
    /// returned: both on the thread (the task prefers this executor), so no lock.
    private var parked: UnsafeContinuation<Void, Never>?
    private var deadline: Int64 = 0
    private var finished = false
    private let fd: Int32

    init() {
        fd = openBlockingTimer(for: "async floor")
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        jobs.withLock { $0.append(job) }
    }

    /// Called from the task, on the thread: the thread waits for `deadline`, then resumes it.
    func park(_ continuation: UnsafeContinuation<Void, Never>, until deadline: Int64) {
        parked = continuation
        self.deadline = deadline
    }

    /// Called from the task, on the thread, after its last tick.
    func finish() { finished = true }

    /// The thread's loop: run the jobs, then wait for the parked task's deadline.
    func run() {
        var batch: [UnownedJob] = []
        while true {
            while true {
                jobs.withLock { swap(&$0, &batch) }
                if batch.isEmpty { break }
                for job in batch { job.runSynchronously(on: asUnownedTaskExecutor()) }
                batch.removeAll(keepingCapacity: true)
            }
            if finished { break }
            guard let continuation = parked else { fail("async floor: no job and no parked task") }
            parked = nil
            let code = bench_blocking_timer_wait(fd, deadline)
            if code != 0 { fail("async floor: timerfd wait failed: errno \(code)") }
            continuation.resume()
        }
        bench_blocking_timer_close(fd)
    }
}

/// A blocking timerfd of the C core for a floor; the benchmark fails if it cannot be opened.
func openBlockingTimer(for floor: String) -> Int32 {
    var fd: Int32 = -1
    let code = bench_blocking_timer_open(&fd)
    if code != 0 { fail("\(floor): timerfd failed: errno \(code)") }
    return fd
}

/// A tick's body, given its deadline: called as a loop's body is (no hop).
typealias AsyncFloorBody = nonisolated(nonsending) @Sendable (Int64) async -> Void

/// `ticks + 1` ticks of the async floor, `period` apart.
func runAsyncFloor(period: Int64, ticks: Int, body: @escaping AsyncFloorBody) {
    let executor = TimerThreadExecutor()
    // The task's first job is queued before the thread exists; every later one comes from
    // the thread itself (a resume, or the task's own hops).
    Task(executorPreference: executor) {
        let first = bootNow() + period
        for tick in 0...Int64(ticks) {
            let deadline = first + tick * period
            // As ClockTimer's sleep: no hop to an isolation on the way in.
            await _unsafeInheritExecutor_withUnsafeContinuation { executor.park($0, until: deadline) }
            await body(deadline)
        }
        executor.finish()
    }
    let thread = Thread { executor.run() }
    thread.start()
}
