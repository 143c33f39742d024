import CBenchSupport
import Foundation

/// Nanoseconds per second, millisecond, microsecond.
let second: Int64 = 1_000_000_000
let millisecond: Int64 = 1_000_000

/// CLOCK_BOOTTIME now (the clock of our loops and of the raw floor).
@inline(__always) func bootNow() -> Int64 { bench_now(BENCH_CLOCK_BOOTTIME) }

/// CLOCK_MONOTONIC now (the clock of DispatchTime on Linux).
@inline(__always) func monoNow() -> Int64 { bench_now(BENCH_CLOCK_MONOTONIC) }

/// A `Duration` in nanoseconds.
func nanoseconds(_ duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    return seconds * second + attoseconds / 1_000_000_000
}

/// Ends the child with a message on stderr; the orchestrator reports the failed scenario.
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("bench: \(message)\n".utf8))
    exit(1)
}

/// Process-wide CPU time and context switches between two instants.
struct UsageDelta {
    var cpuMicroseconds: Double
    var voluntarySwitches: Double
    var involuntarySwitches: Double

    init(from start: bench_usage, to end: bench_usage) {
        cpuMicroseconds = Double((end.user_us - start.user_us) + (end.system_us - start.system_us))
        voluntarySwitches = Double(end.voluntary_switches - start.voluntary_switches)
        involuntarySwitches = Double(end.involuntary_switches - start.involuntary_switches)
    }
}

/// Percentiles of lateness samples, in microseconds.
struct LatenessStats {
    var p50: Double
    var p99: Double
    var max: Double
    var count: Int

    init(_ samples: [Int64]) {
        let sorted = samples.sorted()
        count = sorted.count
        guard !sorted.isEmpty else {
            p50 = .nan; p99 = .nan; max = .nan
            return
        }
        func at(_ fraction: Double) -> Double {
            Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]) / 1000
        }
        p50 = at(0.5)
        p99 = at(0.99)
        max = Double(sorted[sorted.count - 1]) / 1000
    }
}

/// The median of `values` (the lower middle for an even count).
func median(_ values: [Int64]) -> Int64 {
    let sorted = values.sorted()
    return sorted.isEmpty ? 0 : sorted[(sorted.count - 1) / 2]
}

/// A fixed buffer of Int64 written by one tick handler at a time (each slot has one writer)
/// and read once the run is over: no locking on the measured path.
final class SampleBuffer: @unchecked Sendable {
    let base: UnsafeMutablePointer<Int64>
    let count: Int

    init(count: Int, initial: Int64 = 0) {
        self.count = count
        base = .allocate(capacity: max(count, 1))
        // Touched now, so that the pages are resident before any RSS baseline is taken.
        base.initialize(repeating: initial, count: max(count, 1))
    }

    deinit { base.deallocate() }

    subscript(index: Int) -> Int64 {
        get { base[index] }
        set { base[index] = newValue }
    }

    var array: [Int64] { Array(UnsafeBufferPointer(start: base, count: count)) }
}

/// Sleeps the calling thread until `deadline` on CLOCK_BOOTTIME.
func sleepUntil(boot deadline: Int64) { bench_sleep_until(BENCH_CLOCK_BOOTTIME, deadline) }

/// Starts the runtime's first task and Dispatch's worker threads before a memory baseline is
/// taken, so that they are not counted as the cost of what is measured.
func warmUpRuntime() {
    let warm = DispatchSemaphore(value: 0)
    Task { warm.signal() }
    warm.wait()
    DispatchQueue.global().async { warm.signal() }
    warm.wait()
}
