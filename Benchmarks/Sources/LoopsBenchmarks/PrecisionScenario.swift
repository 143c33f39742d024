import CBenchSupport
import Dispatch
import Foundation
import Loops

/// Collects the lateness of each tick, and the process's usage at the first and last tick.
///
/// Tick 0 is the anchor (and warms up the path); ticks 1...ticks are measured. Handlers of one
/// implementation never run concurrently with themselves, so plain stores are enough.
final class TickRecorder: @unchecked Sendable {
    let ticks: Int
    let lateness: SampleBuffer
    private(set) var tick = 0
    private(set) var start = bench_usage()
    private(set) var end = bench_usage()
    /// For loops: the instant `start()` was called, the slot of tick 0 (CLOCK_BOOTTIME).
    var firstSlot: Int64 = 0
    let finished = DispatchSemaphore(value: 0)

    init(ticks: Int) {
        self.ticks = ticks
        lateness = SampleBuffer(count: ticks)
    }

    /// Records a tick whose scheduled instant the caller knows. Returns true after the last.
    @discardableResult
    func record(now: Int64, scheduled: Int64) -> Bool {
        defer { tick += 1 }
        if tick == 0 {
            start = bench_usage_now()
            return false
        }
        lateness[tick - 1] = now - scheduled
        if tick == ticks {
            end = bench_usage_now()
            finished.signal()
            return true
        }
        return false
    }

    /// Records a tick of our `Loop` against the grid a user expects: the instant `start()` was
    /// called (`firstSlot`, read just before the call), plus n periods. The loop's own
    /// `nextIteration` is not used, so a grid anchored later than the call would show as lateness.
    func recordLoop(now: Int64, period: Int64) {
        record(now: now, scheduled: firstSlot + Int64(tick) * period)
    }

    /// `loop.nextIteration` on CLOCK_BOOTTIME: the realtime date converted with two clock
    /// reads (error well under a microsecond).
    static func nextSlot(of loop: Loop) -> Int64 {
        guard let next = loop.nextIteration else { fail("a running loop has no next iteration") }
        let boot = bootNow()
        var realtime = timespec()
        clock_gettime(CLOCK_REALTIME, &realtime)
        let realNow = Int64(realtime.tv_sec) * second + Int64(realtime.tv_nsec)
        let nextReal = Int64((next.timeIntervalSince1970 * 1e9).rounded())
        return boot + (nextReal - realNow)
    }

    func result(_ implementation: Implementation) -> PrecisionResult {
        let samples = lateness.array
        let stats = LatenessStats(samples)
        let usage = UsageDelta(from: start, to: end)
        let window = min(100, samples.count / 2)
        let drift = median(Array(samples.suffix(window))) - median(Array(samples.prefix(window)))
        return PrecisionResult(
            implementation: implementation,
            ticks: ticks,
            latenessP50Microseconds: stats.p50,
            latenessP99Microseconds: stats.p99,
            latenessMaxMicroseconds: stats.max,
            driftMicroseconds: Double(drift) / 1000,
            cpuMicrosecondsPerTick: usage.cpuMicroseconds / Double(ticks),
            voluntarySwitchesPerTick: usage.voluntarySwitches / Double(ticks)
        )
    }
}

/// Runs `ticks + 1` ticks `period` apart on one implementation and waits for the last; the
/// body of each is only the recording (its first statement reads the clock).
func runTicks(_ implementation: Implementation, period: Int64, ticks: Int) -> TickRecorder {
    let recorder = TickRecorder(ticks: ticks)
    switch implementation {
    case .loop, .loopPrecise, .loopDispatch, .loopQueue:
        let clock = implementation.loopClock
        // A serial queue of its own, as DispatchSourceTimer's handler gets.
        let executor = implementation == .loopQueue ? DispatchQueueExecutor(DispatchQueue(label: "bench.loop-queue")) : nil
        let loop: Loop
        do {
            loop = try Loop(seconds: Double(period) / 1e9, count: ticks + 1, clock: clock, executor: executor) { _ in
                let now = bootNow()
                recorder.recordLoop(now: now, period: period)
            }
            recorder.firstSlot = bootNow()
            try loop.start()
        } catch {
            fail("cannot start the loop: \(error)")
        }
        recorder.finished.wait()
        // The loop ends by its count right after the last body.
        withExtendedLifetime(loop) {}

    case .rawTimerfd:
        var start = bench_usage()
        var end = bench_usage()
        let code = bench_raw_timerfd(period, Int32(ticks), recorder.lateness.base, &start, &end)
        if code != 0 { fail("raw timerfd loop failed: errno \(code)") }
        recorder.adopt(start: start, end: end, ticks: ticks)

    case .asyncFloor:
        runAsyncFloor(period: period, ticks: ticks) { deadline in
            recorder.record(now: bootNow(), scheduled: deadline)
        }
        recorder.finished.wait()

    case .globalFloor:
        runGlobalExecutorFloor(period: period, ticks: ticks) { deadline in
            recorder.record(now: bootNow(), scheduled: deadline)
        }
        recorder.finished.wait()

    case .dispatchTimer:
        let queue = DispatchQueue(label: "bench.dispatch-timer")
        let timer = DispatchSource.makeTimerSource(queue: queue)
        let first = monoNow() + period
        timer.setEventHandler {
            let now = monoNow()
            // A handler that runs a period late or more delivers the fires it missed at once
            // (`data` counts them): each is a tick, late from its own instant. Counting one
            // tick per handler would shift every later tick by a period.
            for _ in 0..<max(1, timer.data) {
                if recorder.record(now: now, scheduled: first + Int64(recorder.tick) * period) {
                    timer.cancel()
                    return
                }
            }
        }
        timer.schedule(
            deadline: DispatchTime(uptimeNanoseconds: UInt64(first)),
            repeating: .nanoseconds(Int(period)),
            leeway: .nanoseconds(0)
        )
        timer.activate()
        recorder.finished.wait()

    case .taskSleep:
        Task {
            let clock = ContinuousClock()
            let first = clock.now + .nanoseconds(period)
            for tick in 0...ticks {
                let deadline = first + .nanoseconds(period * Int64(tick))
                try? await Task.sleep(until: deadline, clock: clock)
                let now = clock.now
                // Measured on the clock slept on; the recorder only needs the difference.
                recorder.record(now: nanoseconds(now - deadline), scheduled: 0)
            }
        }
        recorder.finished.wait()
    }
    return recorder
}

extension TickRecorder {
    /// Takes over what the C floor measured itself.
    func adopt(start: bench_usage, end: bench_usage, ticks: Int) {
        self.start = start
        self.end = end
        self.tick = ticks + 1
    }
}

/// The precision scenario in a child process: 1 loop, 10 ms, 1000 measured ticks.
func precisionChild(_ implementation: Implementation, run: Int) -> PrecisionResult {
    var result = runTicks(implementation, period: 10 * millisecond, ticks: 1000).result(implementation)
    result.run = run
    return result
}
