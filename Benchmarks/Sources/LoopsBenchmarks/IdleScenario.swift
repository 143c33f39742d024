import CBenchSupport
import Dispatch
import Foundation
import Loops

/// Counts ticks from any thread.
final class TickCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func increment() { lock.lock(); value += 1; lock.unlock() }
    var count: Int { lock.lock(); defer { lock.unlock() }; return value }
}

/// The idle scenario in a child process: 1 loop at 2 s; wakeups of the process over 10 s.
///
/// The window starts 1 s after the first tick, so it holds the ticks at 2, 4, 6, 8 and 10 s
/// (the first at 0 s is setup). Between two ticks an implementation that sleeps properly
/// wakes no thread at all.
func idleChild(_ implementation: Implementation) -> IdleResult {
    let period = 2 * second
    let counter = TickCounter()
    let firstTick = DispatchSemaphore(value: 0)
    var keepAlive: Any?

    switch implementation {
    case .loop, .loopPrecise, .loopDispatch:
        let clock = implementation.loopClock
        do {
            let loop = try Loop(seconds: 2, clock: clock) { _ in
                if counter.count == 0 { firstTick.signal() }
                counter.increment()
            }
            try loop.start()
            keepAlive = loop
        } catch {
            fail("cannot start the loop: \(error)")
        }
    case .asyncFloor, .globalFloor, .loopQueue:
        fail("the idle scenario has no async floors (their threads wake only for their deadlines, as the raw floor's) and no DispatchQueueExecutor row")
    case .rawTimerfd:
        let thread = Thread {
            var start = bench_usage()
            var end = bench_usage()
            let lateness = SampleBuffer(count: 16)
            firstTick.signal()
            _ = bench_raw_timerfd(period, 15, lateness.base, &start, &end)
        }
        thread.start()
        keepAlive = thread
    case .dispatchTimer:
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "bench.idle"))
        timer.setEventHandler {
            if counter.count == 0 { firstTick.signal() }
            counter.increment()
        }
        timer.schedule(deadline: .now(), repeating: .seconds(2), leeway: .nanoseconds(0))
        timer.activate()
        keepAlive = timer
    case .taskSleep:
        Task {
            let clock = ContinuousClock()
            var deadline = clock.now
            while true {
                try? await Task.sleep(until: deadline, clock: clock)
                if counter.count == 0 { firstTick.signal() }
                counter.increment()
                deadline += .seconds(2)
            }
        }
    }
    firstTick.wait()
    let windowStart = bootNow() + second
    sleepUntil(boot: windowStart)
    let before = bench_usage_now()
    sleepUntil(boot: windowStart + 10 * second)
    let after = bench_usage_now()
    withExtendedLifetime(keepAlive) {}
    // The measuring thread's own sleep is one voluntary switch; it is not the implementation's.
    let wakeups = UsageDelta(from: before, to: after).voluntarySwitches - 1
    return IdleResult(
        implementation: implementation,
        seconds: 10,
        ticks: 5,
        wakeupsPerSecond: wakeups / 10,
        wakeupsPerTick: wakeups / 5
    )
}

/// The engine-cost child, run under callgrind: `ticks` ticks at 5 ms, nothing printed.
func costChild(_ implementation: Implementation, ticks: Int) {
    _ = runTicks(implementation, period: 5 * millisecond, ticks: ticks)
}
