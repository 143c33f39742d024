import CBenchSupport
import Dispatch
import Foundation
import Loops

/// Per-loop recording for the scale scenario: tick counts and the lateness of ticks 1...9
/// of each loop (tick 0 anchors our loops, whose first slot is their start).
final class ScaleRecorder: @unchecked Sendable {
    static let measuredTicks = 10
    let loops: Int
    /// The loops' period, in nanoseconds.
    let period: Int64
    let counts: SampleBuffer
    let anchors: SampleBuffer
    let lateness: SampleBuffer

    init(loops: Int, period: Int64) {
        self.loops = loops
        self.period = period
        counts = SampleBuffer(count: loops)
        anchors = SampleBuffer(count: loops)
        lateness = SampleBuffer(count: loops * (Self.measuredTicks - 1), initial: .min)
    }

    /// Records tick `counts[index]` of loop `index`, scheduled at `scheduled` (nil for our
    /// loops, whose grid is anchored at tick 0).
    @inline(__always)
    func record(_ index: Int, now: Int64, scheduled: Int64) {
        let tick = Int(counts[index])
        counts[index] = Int64(tick + 1)
        guard tick > 0, tick < Self.measuredTicks else { return }
        lateness[index * (Self.measuredTicks - 1) + tick - 1] = now - scheduled
    }

    func recordLoop(_ index: Int, now: Int64, loop: Loop) {
        if counts[index] == 0 { anchors[index] = TickRecorder.nextSlot(of: loop) - period }
        record(index, now: now, scheduled: anchors[index] + counts[index] * period)
    }

    var delivered: Int {
        (0..<loops).reduce(0) { $0 + min(Int(counts[$1]), Self.measuredTicks) }
    }

    var samples: [Int64] { lateness.array.filter { $0 != .min } }
}

/// The scale scenario in a child process: `loops` loops every `period` nanoseconds with phases
/// spread over the period, for 10 periods (ticks 0...9 of each loop).
func scaleChild(_ implementation: Implementation, loops: Int, period: Int64 = second) -> ScaleResult {
    let recorder = ScaleRecorder(loops: loops, period: period)
    warmUpRuntime()
    let baseline = bench_rss_bytes()

    // The loops or timers, kept as they were made: converting them to `[Any]` made a second
    // array of 32-byte existentials, counted against each loop's RSS.
    var keepAlive: Any?
    // How far behind its phase the latest start() call was: starting a million loops is work
    // of its own, and a loop started late ticks late on its own grid (which lateness measures).
    var startLag: Int64 = 0
    let start: Int64
    let phase = { (index: Int) -> Int64 in Int64(index) * period / Int64(loops) }

    switch implementation {
    case .loop, .loopPrecise, .loopDispatch:
        var created: [Loop] = []
        created.reserveCapacity(loops)
        let clock = implementation.loopClock
        for index in 0..<loops {
            do {
                created.append(try Loop(seconds: Double(period) / 1e9, count: ScaleRecorder.measuredTicks, clock: clock) { loop in
                    let now = bootNow()
                    recorder.recordLoop(index, now: now, loop: loop)
                })
            } catch {
                fail("cannot create loop \(index): \(error)")
            }
        }
        start = bootNow() + 100 * millisecond
        // Start each loop at its phase (its first tick runs at start); batches of 1 ms.
        for (index, loop) in created.enumerated() {
            let target = start + phase(index)
            if target - bootNow() > millisecond { sleepUntil(boot: target) }
            do { try loop.start() } catch { fail("cannot start loop \(index): \(error)") }
            startLag = max(startLag, bootNow() - target)
        }
        keepAlive = created

    case .dispatchTimer:
        var timers: [any DispatchSourceTimer] = []
        timers.reserveCapacity(loops)
        for _ in 0..<loops { timers.append(DispatchSource.makeTimerSource(queue: .global())) }
        // DispatchTime counts CLOCK_MONOTONIC; the scenario's instants are on CLOCK_BOOTTIME.
        let offset = bootNow() - monoNow()
        start = bootNow() + period
        for (index, timer) in timers.enumerated() {
            let first = start + phase(index)
            timer.setEventHandler {
                let now = bootNow()
                // Fires missed by a handler a period late arrive at once (see runTicks).
                for _ in 0..<max(1, timer.data) {
                    recorder.record(index, now: now, scheduled: first + recorder.counts[index] * period)
                    if recorder.counts[index] >= Int64(ScaleRecorder.measuredTicks) {
                        timer.cancel()
                        return
                    }
                }
            }
            timer.schedule(
                deadline: DispatchTime(uptimeNanoseconds: UInt64(first - offset)),
                repeating: .nanoseconds(Int(period)),
                leeway: .nanoseconds(0)
            )
            timer.activate()
        }
        keepAlive = timers

    case .taskSleep:
        let clock = ContinuousClock()
        let startInstant = clock.now + .nanoseconds(period)
        start = bootNow() + period
        for index in 0..<loops {
            let first = startInstant + .nanoseconds(phase(index))
            Task {
                for tick in 0..<ScaleRecorder.measuredTicks {
                    let deadline = first + .nanoseconds(period * Int64(tick))
                    try? await Task.sleep(until: deadline, clock: clock)
                    let late = nanoseconds(clock.now - deadline)
                    recorder.record(index, now: late, scheduled: 0)
                }
            }
        }

    case .rawTimerfd, .asyncFloor, .globalFloor, .loopQueue:
        fail("the scale scenario measures neither the floors (one fd per loop) nor loops on a DispatchQueueExecutor")
    }

    // CPU over the steady part (every loop started), RSS in the middle of it.
    sleepUntil(boot: start + period)
    let usageStart = bench_usage_now()
    sleepUntil(boot: start + 5 * period)
    let rss = bench_rss_bytes()
    sleepUntil(boot: start + 10 * period)
    let usageEnd = bench_usage_now()
    // Grace for the last ticks (scheduled before start + 10 periods, later for loops started
    // late): until every tick is in, or one more period has passed.
    let graceEnd = start + 11 * period
    sleepUntil(boot: start + 10 * period + 100 * millisecond)
    while recorder.delivered < loops * ScaleRecorder.measuredTicks, bootNow() < graceEnd {
        sleepUntil(boot: bootNow() + 100 * millisecond)
    }
    let delivered = recorder.delivered
    let stats = LatenessStats(recorder.samples)
    withExtendedLifetime(keepAlive) {}
    return ScaleResult(
        implementation: implementation,
        loops: loops,
        periodSeconds: Double(period) / 1e9,
        ticksExpected: loops * ScaleRecorder.measuredTicks,
        ticksDelivered: delivered,
        latenessP50Microseconds: stats.p50,
        latenessP99Microseconds: stats.p99,
        cpuPercentOfOneCore: UsageDelta(from: usageStart, to: usageEnd).cpuMicroseconds / (Double(9 * period) / 1e3) * 100,
        rssPerLoopKilobytes: Double(rss - baseline) / 1024 / Double(loops),
        startLagMaxMilliseconds: Double(startLag) / 1e6
    )
}
