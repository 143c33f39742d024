import Dispatch
import CBenchSupport

/// The memory floor of a loop that sleeps in a task: `tasks` bare Swift tasks, each suspended
/// in one continuation that is never resumed, measured like the scale scenario's loops (RSS
/// delta over the runtime's baseline, per task).
struct FloorResult: Codable, Sendable {
    var scenario = "floor"
    let tasks: Int
    let rssPerTaskKilobytes: Double
}

/// Keeps the continuations alive; they are never resumed (the process exits after measuring).
private final class Parked: @unchecked Sendable {
    private let lock = DispatchSemaphore(value: 1)
    private var continuations: [UnsafeContinuation<Void, Never>] = []
    private let all = DispatchSemaphore(value: 0)

    func park(_ continuation: UnsafeContinuation<Void, Never>) {
        lock.wait()
        continuations.append(continuation)
        lock.signal()
        all.signal()
    }

    func waitFor(_ count: Int) {
        for _ in 0..<count { all.wait() }
    }
}

func floorChild(tasks: Int) -> FloorResult {
    warmUpRuntime()
    let parked = Parked()
    let baseline = bench_rss_bytes()
    for _ in 0..<tasks {
        Task {
            await withUnsafeContinuation { parked.park($0) }
        }
    }
    parked.waitFor(tasks)
    let rss = bench_rss_bytes()
    return FloorResult(tasks: tasks, rssPerTaskKilobytes: Double(rss - baseline) / 1024 / Double(tasks))
}
