import CBenchSupport
import Foundation
import Synchronization

/// The floor under default mode's shape: a task on the global executor that arms a timerfd
/// itself and suspends in a continuation, and a thread blocked in `read` of that timerfd that
/// resumes it — the resume enqueues the task on the global executor, whose worker is woken to
/// run it. Two threads a tick, as default mode and DispatchSourceTimer (its manager thread
/// and a worker); no state machine, heap or epoll. What it costs above the async floor is
/// the global executor's hop; what default mode costs above it is ours.
final class GlobalExecutorFloor: Sendable {
    /// The parked task, stored before the timer is armed (so the thread, woken only by the
    /// timer, always finds it) and taken by the thread.
    private let parked = Mutex<UnsafeContinuation<Void, Never>?>(nil)
    private let fd: Int32

    init() {
        fd = openBlockingTimer(for: "global-executor floor")
    }

    /// Called from the task, on a worker of the global executor.
    func park(_ continuation: UnsafeContinuation<Void, Never>, until deadline: Int64) {
        parked.withLock { $0 = continuation }
        let code = bench_blocking_timer_arm(fd, deadline)
        if code != 0 { fail("global-executor floor: arming failed: errno \(code)") }
    }

    /// The thread: wait for the timer, resume the parked task. After the last tick the task
    /// parks no more and the thread stays blocked until the process exits.
    func run() {
        while true {
            let code = bench_blocking_timer_read(fd)
            if code != 0 { fail("global-executor floor: timerfd wait failed: errno \(code)") }
            parked.withLock { parked in
                let continuation = parked
                parked = nil
                return continuation
            }?.resume()
        }
    }
}

/// `ticks + 1` ticks of the global-executor floor, `period` apart.
func runGlobalExecutorFloor(period: Int64, ticks: Int, body: @escaping AsyncFloorBody) {
    let floor = GlobalExecutorFloor()
    let thread = Thread { floor.run() }
    thread.start()
    Task {
        let first = bootNow() + period
        for tick in 0...Int64(ticks) {
            let deadline = first + tick * period
            await withUnsafeContinuation { floor.park($0, until: deadline) }
            await body(deadline)
        }
    }
}
