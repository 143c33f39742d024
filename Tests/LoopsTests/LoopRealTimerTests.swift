import Foundation
import Loops
import Testing

/// Loops on the real timerfd engine. Every bound leaves ≥ 25 ms of headroom over the worst
/// single wake seen on shared VMs (18 ms late); lateness itself is measured by `make bench`.
@Suite("Loops on the real timer core", .serialized)
struct LoopRealTimerTests {
    private static func monotonicNow() -> Double {
        Double(DispatchTime.now().uptimeNanoseconds) / 1e9
    }

    @Test("a 100 ms loop with count 4 runs on its grid, never early, at most 60 ms late")
    func gridOnRealTimers() async throws {
        // Each body records when it started and the instant the loop scheduled the next one at.
        let samples = LockedValue<[(started: Date, next: Date?)]>([])
        let loop = try Loop(seconds: 0.1, count: 4) { loop in
            let now = Date()
            samples.withLock { $0.append((now, loop.nextIteration)) }
        }
        let task = try loop.start()
        await task.value
        let recorded = samples.withLock { $0 }
        #expect(recorded.count == 4)
        #expect(loop.currentLoop == 4)
        for index in 1..<recorded.count {
            let scheduled = try #require(recorded[index - 1].next)
            let lateness = recorded[index].started.timeIntervalSince(scheduled)
            #expect(lateness >= -0.001, "iteration \(index) ran \(-lateness) s early")
            #expect(lateness < 0.060, "iteration \(index) ran \(lateness) s late")
            if let next = recorded[index].next {
                // No drift: consecutive scheduled instants are exactly one interval apart.
                #expect(abs(next.timeIntervalSince(scheduled) - 0.1) < 0.001)
            }
        }
    }

    @Test("stop() during a real sleep ends the loop well before the next deadline")
    func stopDuringRealSleep() async throws {
        let loop = try Loop(seconds: 10) { _ in }
        let ended = LockedValue<Double?>(nil)
        loop.afterLoop { _ in ended.withLock { $0 = Self.monotonicNow() } }
        let task = try loop.start()
        try await Task.sleep(for: .milliseconds(30))
        let stopAt = Self.monotonicNow()
        loop.stop()
        await task.value
        let end = try #require(ended.withLock { $0 })
        #expect(end - stopAt < 0.5)
        #expect(loop.isRunning == false)
    }

    @Test("cancel() during a real sleep runs afterLoop with isBeingCancelled")
    func cancelDuringRealSleep() async throws {
        let loop = try Loop(seconds: 10) { _ in }
        let cancelledSeen = LockedValue<Bool?>(nil)
        loop.afterLoop { loop in cancelledSeen.withLock { $0 = loop.isBeingCancelled } }
        let task = try loop.start()
        try await Task.sleep(for: .milliseconds(30))
        loop.cancel()
        await task.value
        #expect(cancelledSeen.withLock { $0 } == true)
    }

    /// The three wait paths a loop can sleep on with kernel timers.
    enum WaitPath: String, CaseIterable, Sendable {
        case epollThread, precisionMode, dispatchSource

        var clock: LoopClock {
            switch self {
            case .epollThread: .continuous
            case .precisionMode: .precise
            case .dispatchSource: .continuous.viaDispatchSource
            }
        }
    }

    /// Waits (bounded) until `loop` has run `count` bodies according to `bodies`.
    private static func waitForBodies(_ bodies: LockedValue<Int>, _ count: Int) async throws {
        let giveUp = monotonicNow() + 5
        while bodies.withLock({ $0 }) < count, monotonicNow() < giveUp {
            try await Task.sleep(for: .milliseconds(1))
        }
        try #require(bodies.withLock { $0 } >= count)
    }

    @Test("cancelling the task that awaits run() ends a real sleep at once: run() throws after afterLoop",
          arguments: WaitPath.allCases)
    func cancellingRunCallerEndsRealSleep(path: WaitPath) async throws {
        let bodies = LockedValue(0)
        let ended = LockedValue<Double?>(nil)
        let loop = try Loop(seconds: 10, clock: path.clock) { _ in bodies.withLock { $0 += 1 } }
        loop.afterLoop { _ in ended.withLock { $0 = Self.monotonicNow() } }
        let runner = Task { try await loop.run() }
        try await Self.waitForBodies(bodies, 1)
        // Asleep until +10 s by now.
        try await Task.sleep(for: .milliseconds(30))
        let cancelledAt = Self.monotonicNow()
        runner.cancel()
        await #expect(throws: CancellationError.self) { try await runner.value }
        let end = try #require(ended.withLock { $0 })
        #expect(end - cancelledAt < 0.5)
        #expect(bodies.withLock { $0 } == 1)
        #expect(loop.isRunning == false)
        #expect(loop.failed == false)
    }

    @Test("cancelling a loop's public task ends a real sleep at once, and the loop can start again",
          arguments: WaitPath.allCases)
    func cancellingPublicTaskEndsRealSleep(path: WaitPath) async throws {
        let bodies = LockedValue(0)
        let loop = try Loop(seconds: 10, clock: path.clock) { _ in bodies.withLock { $0 += 1 } }
        let task = try loop.start()
        try await Self.waitForBodies(bodies, 1)
        try await Task.sleep(for: .milliseconds(30))
        let cancelledAt = Self.monotonicNow()
        task.cancel()
        await task.value
        #expect(Self.monotonicNow() - cancelledAt < 0.5)
        #expect(loop.isRunning == false)
        // Cancelled before its first sleep: ends without waiting for the interval.
        let again = try loop.start()
        again.cancel()
        let startedAt = Self.monotonicNow()
        await again.value
        #expect(Self.monotonicNow() - startedAt < 0.5)
        #expect(loop.isRunning == false)
    }

    @Test("10,000 loops share one timer descriptor per clock")
    func tenThousandLoopsOnFewDescriptors() async throws {
        let descriptorsBefore = openDescriptorCount()
        let ticks = Counter()
        var loops: [Loop] = []
        for _ in 0..<10_000 {
            let loop = try Loop(seconds: 0.1, count: 2) { _ in ticks.increment() }
            loops.append(loop)
        }
        var tasks: [Task<Void, Never>] = []
        for loop in loops { tasks.append(try loop.start()) }
        try await Task.sleep(for: .milliseconds(50))
        let descriptorsDuring = openDescriptorCount()
        for task in tasks { await task.value }
        #expect(ticks.current == 20_000)
        // The shared engine may have opened its descriptors in an earlier test: at most one
        // per clock (3) may be new, whatever the number of loops.
        #expect(descriptorsDuring - descriptorsBefore <= 3, "\(descriptorsDuring - descriptorsBefore) new descriptors")
    }

    @Test("an injected ECANCELED on the real wall-clock timer makes a sleeping wall schedule re-evaluate and sleep again")
    func injectedClockStepOnRealTimer() async throws {
        let engine = SystemEngine.shared
        let runs = Counter()
        // Fires at the top of every hour: certainly not within this test.
        let loop = try Loop(schedule: .calendar("*-*-* *:00:00 UTC")) { _ in runs.increment() }
        try loop.start()
        let scheduled = try await eventually { loop.nextIteration }
        let sleepersBefore = try await eventually { engine.sleeperCount(on: .realtime) > 0 ? engine.sleeperCount(on: .realtime) : nil }
        let stepsBefore = engine.wallClockStepCount
        try engine.simulateWallClockStep()
        _ = try await eventually { engine.wallClockStepCount > stepsBefore ? true : nil }
        // The loop woke with .clockStepped, found nothing due, and went back to sleep on the same slot.
        _ = try await eventually { engine.sleeperCount(on: .realtime) == sleepersBefore ? true : nil }
        #expect(loop.nextIteration == scheduled)
        #expect(runs.current == 0)
        #expect(loop.isRunning)
        loop.cancel()
        await loop.task?.value
    }

    /// Polls `probe` every 5 ms for up to 2 s until it returns a value.
    private func eventually<T>(_ probe: () -> T?) async throws -> T {
        for _ in 0..<400 {
            if let value = probe() { return value }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw LoopError(.systemTimer, "condition not reached within 2 s")
    }

    private func openDescriptorCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }
}

@Suite("The grid is anchored at start()")
struct LoopAnchorTests {
    @Test("a run whose task gets its thread 80 ms late keeps the grid of the start() call")
    func gridAnchoredAtStartCall() async throws {
        let queue = DispatchQueue(label: "swift-loops.tests.anchor")
        let origin = ContinuousClock.now
        let stamps = LockedValue<[Duration]>([])
        let loop = try Loop(seconds: 0.1, count: 3, executor: DispatchQueueExecutor(queue)) { _ in
            stamps.withLock { $0.append(ContinuousClock.now - origin) }
        }
        // The queue is busy for 80 ms, so the run's task cannot begin at once. The busy block
        // notes when its sleep begins: this thread may wake from `busy.wait()` some ms later on a
        // loaded machine (or under a sanitizer), so `startedAt` is no bound for the first body.
        let busy = DispatchSemaphore(value: 0)
        let busyFrom = LockedValue<Duration>(.zero)
        queue.async {
            busyFrom.withLock { $0 = ContinuousClock.now - origin }
            busy.signal()
            Thread.sleep(forTimeInterval: 0.08)
        }
        busy.wait()
        let startedAt = ContinuousClock.now - origin
        let task = try loop.start()
        await task.value
        let times = stamps.withLock { $0 }
        #expect(times.count == 3)
        // The first body waits for the queue; the second is due at start() + 100 ms, not at
        // first body + 100 ms (≥ 180 ms). The bounds leave 50 ms for a late wake.
        #expect(times[0] >= busyFrom.withLock { $0 } + .milliseconds(75), "\(times) from \(startedAt)")
        #expect(times[1] >= startedAt + .milliseconds(100))
        #expect(times[1] < startedAt + .milliseconds(150), "\(times) from \(startedAt)")
        #expect(times[2] >= startedAt + .milliseconds(200))
        #expect(times[2] < startedAt + .milliseconds(250), "\(times) from \(startedAt)")
    }
}
