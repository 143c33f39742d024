import Foundation
import Synchronization
import Testing

@testable import Loops

#if canImport(Glibc)
import Glibc
#endif

/// The engine suites that open timerfds, run one test at a time because several of them count
/// the process's timerfds.
@Suite(.serialized)
struct EngineTests {}

/// Real-timer tests of the system engine.
extension EngineTests {
    @Suite("SystemEngine")
    struct SystemEngineTests {
        /// 30 ms: the ≥ 25 ms of headroom real-timer tests keep on these machines.
        static let shortDelay: Int64 = 30_000_000
        /// Long enough that nothing wakes by itself while a test looks at it.
        static let longDelay: Int64 = 60_000_000_000

        @Test("a sleep wakes at or after its deadline, never before", arguments: EngineClock.allCases)
        func wakesAfterDeadline(clock: EngineClock) async throws {
            let engine = SystemEngine()
            for _ in 0..<3 {
                let deadline = engine.now(clock) + Self.shortDelay
                let reason = try await engine.sleep(until: deadline, on: clock, waker: nil)
                let woke = engine.now(clock)
                #expect(reason == .deadlineReached)
                #expect(woke >= deadline)
                // Generous: only catches a sleep that waits for some unrelated event.
                #expect(woke - deadline < 2_000_000_000)
            }
            #expect(engine.sleeperCount(on: clock) == 0)
            // Idle: nobody sleeps, so the fd is not armed and causes no wakeups.
            #expect(engine.armedDeadline(on: clock) == nil)
        }

        @Test("both wait paths: sleeps wake in order after their deadlines, a wall-clock step wakes realtime sleepers",
              arguments: [SystemEngine.WaitPath.epollThread, .dispatchSource])
        func waitPaths(path: SystemEngine.WaitPath) async throws {
            let engine = SystemEngine(waitPath: path)
            let woke = LockedValue<[Int]>([])
            let base = engine.now(.continuous) + Self.shortDelay
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in [2, 0, 1] {
                    group.addTask {
                        let deadline = base + Int64(index) * Self.shortDelay
                        _ = try await engine.sleep(until: deadline, on: .continuous, waker: nil)
                        #expect(engine.now(.continuous) >= deadline)
                        woke.withLock { $0.append(index) }
                    }
                }
                try await group.waitForAll()
            }
            #expect(woke.withLock { $0 } == [0, 1, 2])
            let stepped = Task {
                try await engine.sleep(until: engine.now(.realtime) + Self.longDelay, on: .realtime, waker: nil)
            }
            while engine.sleeperCount(on: .realtime) == 0 { await Task.yield() }
            try engine.simulateWallClockStep()
            #expect(try await stepped.value == .clockStepped)
        }

        @Test("viaDispatchSource: a loop's timers are read by Dispatch, on its own clock; other engines' clocks keep theirs")
        func viaDispatchSource() async throws {
            let clock = LoopClock.continuous.viaDispatchSource
            let engine = try #require(clock.engine as? SystemEngine)
            #expect(engine === SystemEngine.sharedDispatch)
            #expect(engine.waitPath == .dispatchSource)
            #expect(SystemEngine.shared.waitPath == .epollThread)
            #expect(clock.intervalClock == .continuous)
            #expect(LoopClock.suspending.viaDispatchSource.intervalClock == .suspending)
            #expect(LoopClock.precise.viaDispatchSource.engine === PrecisionEngine.shared)

            let starts = LockedValue<[Int64]>([])
            let loop = try Loop(seconds: 0.03, count: 3, clock: clock) { _ in
                starts.withLock { $0.append(engine.now(.continuous)) }
            }
            let before = engine.now(.continuous)
            try await loop.run()
            let times = starts.withLock { $0 }
            try #require(times.count == 3)
            // The grid is anchored at the call, so body k never runs before `before` + k × 30 ms.
            for (k, time) in times.enumerated() {
                #expect(time >= before + Int64(k) * Self.shortDelay)
            }
            #expect(engine.openTimerDescriptorCount == 1)
            #expect(engine.sleeperCount(on: .continuous) == 0)
        }

        @Test("an epoll_wait failure shuts the engine down: sleepers fail with a LoopError naming it, no spin")
        func epollWaitFailure() async throws {
            let engine = SystemEngine()
            let sleeper = Task {
                try await engine.sleep(until: engine.now(.continuous) + Self.longDelay, on: .continuous, waker: nil)
            }
            while engine.sleeperCount(on: .continuous) == 0 { await Task.yield() }
            let (epoll, eventfd) = try #require(engine.waitingThreadDescriptors)
            _ = try Fault.arm(.epollWait, target: epoll, errno: EIO)
            // The thread is blocked in epoll_wait already: wake it so that it calls it again.
            try Fault.wakeThread(eventfd: eventfd)
            let failure = LoopError(.systemTimer, "epoll_wait failed: EIO (Input/output error)")
            do {
                _ = try await sleeper.value
                Issue.record("the sleeper woke normally")
            } catch let error as LoopError {
                #expect(error == failure)
            }
            // The thread has exited rather than retrying a failing wait.
            let deadline = ContinuousClock.now + .seconds(5)
            while !engine.hasWaitingThreadExited, ContinuousClock.now < deadline { await Task.yield() }
            #expect(engine.hasWaitingThreadExited)
            // Later sleeps fail at once with the same error, on the clock that was open and on
            // one that was not.
            for clock in [EngineClock.continuous, .realtime] {
                await #expect(throws: failure) {
                    try await engine.sleep(until: engine.now(clock) + Self.shortDelay, on: clock, waker: nil)
                }
            }
        }

        @Test("a deadline already reached returns without suspending or opening a timer")
        func pastDeadlineReturnsAtOnce() async throws {
            let engine = SystemEngine()
            for clock in EngineClock.allCases {
                let reason = try await engine.sleep(until: engine.now(clock) - 1, on: clock, waker: nil)
                #expect(reason == .deadlineReached)
            }
            #expect(engine.openTimerDescriptorCount == 0)
        }

        @Test("sleepers wake in deadline order")
        func wakesInOrder() async throws {
            let engine = SystemEngine()
            let sequence = WakeSequence()
            let groups = 4
            let perGroup = 25
            // Groups 40 ms apart, shuffled within a group, inserted in random order.
            let base = engine.now(.continuous) + Self.shortDelay
            var plan: [(group: Int, deadline: Int64)] = []
            for group in 0..<groups {
                for _ in 0..<perGroup {
                    plan.append((group, base + Int64(group) * 40_000_000 + Int64.random(in: 0..<5_000_000)))
                }
            }
            plan.shuffle()
            let results = try await withThrowingTaskGroup(of: (group: Int, deadline: Int64, woke: Int64, order: Int).self) { tasks in
                for entry in plan {
                    tasks.addTask {
                        _ = try await engine.sleep(until: entry.deadline, on: .continuous, waker: nil)
                        let woke = engine.now(.continuous)
                        let order = sequence.next()
                        return (entry.group, entry.deadline, woke, order)
                    }
                }
                return try await tasks.reduce(into: []) { $0.append($1) }
            }
            #expect(results.count == groups * perGroup)
            for result in results { #expect(result.woke >= result.deadline) }
            for group in 1..<groups {
                let previousLast = results.filter { $0.group == group - 1 }.map(\.order).max() ?? 0
                let firstOfGroup = results.filter { $0.group == group }.map(\.order).min() ?? 0
                #expect(previousLast < firstOfGroup, "group \(group) woke before group \(group - 1) finished")
            }
        }

        @Test("a task cancelled before it sleeps throws CancellationError at once")
        func cancelledBeforeSleep() async throws {
            let engine = SystemEngine()
            let task = Task { () async throws -> WakeReason in
                withUnsafeCurrentTask { $0?.cancel() }
                return try await engine.sleep(until: engine.now(.suspending) + Self.longDelay, on: .suspending, waker: nil)
            }
            let started = ContinuousClock.now
            await #expect(throws: CancellationError.self) { try await task.value }
            #expect(ContinuousClock.now - started < .seconds(5))
            #expect(engine.sleeperCount(on: .suspending) == 0)
        }

        @Test("cancelling a sleeping task removes it from the heap and disarms the timer", arguments: EngineClock.allCases)
        func cancelledDuringSleep(clock: EngineClock) async throws {
            let engine = SystemEngine()
            let deadline = engine.now(clock) + Self.longDelay
            let task = Task { try await engine.sleep(until: deadline, on: clock, waker: nil) }
            try #require(await waitUntil { engine.sleeperCount(on: clock) == 1 })
            #expect(engine.armedDeadline(on: clock) == deadline)
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
            #expect(engine.sleeperCount(on: clock) == 0)
            #expect(engine.armedDeadline(on: clock) == nil)
        }

        @Test("the timer is re-armed only when the earliest deadline changes")
        func armsAtTheEarliestDeadline() async throws {
            let engine = SystemEngine()
            let now = engine.now(.suspending)
            let late = Task { try await engine.sleep(until: now + Self.longDelay, on: .suspending, waker: nil) }
            try #require(await waitUntil { engine.sleeperCount(on: .suspending) == 1 })
            #expect(engine.armedDeadline(on: .suspending) == now + Self.longDelay)

            let later = Task { try await engine.sleep(until: now + 2 * Self.longDelay, on: .suspending, waker: nil) }
            try #require(await waitUntil { engine.sleeperCount(on: .suspending) == 2 })
            #expect(engine.armedDeadline(on: .suspending) == now + Self.longDelay)

            let early = Task { try await engine.sleep(until: now + Self.longDelay / 2, on: .suspending, waker: nil) }
            try #require(await waitUntil { engine.sleeperCount(on: .suspending) == 3 })
            #expect(engine.armedDeadline(on: .suspending) == now + Self.longDelay / 2)

            early.cancel()
            _ = await early.result
            #expect(engine.armedDeadline(on: .suspending) == now + Self.longDelay)
            later.cancel()
            late.cancel()
            _ = await (later.result, late.result)
            #expect(engine.armedDeadline(on: .suspending) == nil)
        }

        @Test("sleepers cancelled right at their deadline resume exactly once")
        func cancelRacesWake() async throws {
            let engine = SystemEngine()
            let count = 2_000
            let deadline = engine.now(.continuous) + Self.shortDelay
            let tasks = (0..<count).map { _ in
                Task { try await engine.sleep(until: deadline, on: .continuous, waker: nil) }
            }
            // Cancel around the deadline, so some wakes and cancellations meet.
            try await Task.sleep(for: .milliseconds(29))
            for task in tasks { task.cancel() }
            var reached = 0
            var cancelled = 0
            for task in tasks {
                switch await task.result {
                case .success(let reason):
                    #expect(reason == .deadlineReached)
                    reached += 1
                case .failure(let error):
                    #expect(error is CancellationError)
                    cancelled += 1
                }
            }
            #expect(reached + cancelled == count)
            #expect(engine.sleeperCount(on: .continuous) == 0)
        }

        @Test("10,000 concurrent sleepers use one timerfd per clock")
        func manySleepersOneDescriptorPerClock() async throws {
            await warmUpSharedEngine()
            let baseline = openTimerDescriptors()
            let engine = SystemEngine()
            let perClock = 10_000 / 3 + 1
            // 3 s: every sleeper must be asleep before the first deadline, and starting 10,000
            // tasks takes most of a second under ThreadSanitizer on a loaded 2-core machine.
            let deadlines = Dictionary(uniqueKeysWithValues: EngineClock.allCases.map {
                ($0, engine.now($0) + 3_000_000_000)
            })
            let results = try await withThrowingTaskGroup(of: (EngineClock, WakeReason, Int64).self) { tasks in
                for clock in EngineClock.allCases {
                    for _ in 0..<perClock {
                        tasks.addTask {
                            let reason = try await engine.sleep(until: deadlines[clock]!, on: clock, waker: nil)
                            return (clock, reason, engine.now(clock))
                        }
                    }
                }
                let allAsleep = await waitUntil {
                    EngineClock.allCases.allSatisfy { engine.sleeperCount(on: $0) == perClock }
                }
                #expect(allAsleep, "sleepers were woken before all of them were asleep")
                #expect(engine.openTimerDescriptorCount == 3)
                #expect(await waitUntil { openTimerDescriptors() - baseline == 3 })
                return try await tasks.reduce(into: []) { $0.append($1) }
            }
            #expect(results.count == 3 * perClock)
            for (clock, reason, woke) in results {
                #expect(reason == .deadlineReached)
                #expect(woke >= deadlines[clock]!)
            }
        }

        @Test("a wall-clock step wakes realtime sleepers with .clockStepped, not monotonic ones")
        func clockStepWakesRealtimeSleepers() async throws {
            let engine = SystemEngine()
            let wall = (0..<5).map { _ in
                Task { try await engine.sleep(until: engine.now(.realtime) + Self.longDelay, on: .realtime, waker: nil) }
            }
            let elapsed = EngineClock.allCases.filter { $0 != .realtime }.map { clock in
                Task { try await engine.sleep(until: engine.now(clock) + Self.longDelay, on: clock, waker: nil) }
            }
            try #require(await waitUntil {
                engine.sleeperCount(on: .realtime) == 5 && engine.sleeperCount(on: .continuous) == 1
                    && engine.sleeperCount(on: .suspending) == 1
            })

            #expect(engine.wallClockStepCount == 0)
            try engine.simulateWallClockStep()
            for task in wall { #expect(try await task.value == .clockStepped) }
            #expect(engine.wallClockStepCount == 1)
            #expect(engine.sleeperCount(on: .realtime) == 0)
            #expect(engine.sleeperCount(on: .continuous) == 1)
            #expect(engine.sleeperCount(on: .suspending) == 1)

            // The realtime timer works normally afterwards.
            let deadline = engine.now(.realtime) + Self.shortDelay
            #expect(try await engine.sleep(until: deadline, on: .realtime, waker: nil) == .deadlineReached)
            #expect(engine.now(.realtime) >= deadline)

            for task in elapsed { task.cancel() }
            for task in elapsed { await #expect(throws: CancellationError.self) { try await task.value } }
        }

        @Test("a step simulated before anyone sleeps opens the realtime fd and wakes nobody")
        func clockStepWithoutSleepers() async throws {
            let engine = SystemEngine()
            try engine.simulateWallClockStep()
            #expect(engine.timerDescriptor(for: .realtime) != nil)
            // A sleep that starts before the step is handled may legitimately see the step.
            #expect(await waitUntil { engine.wallClockStepCount == 1 })
            #expect(engine.armedDeadline(on: .realtime) == nil)
            let deadline = engine.now(.realtime) + Self.shortDelay
            #expect(try await engine.sleep(until: deadline, on: .realtime, waker: nil) == .deadlineReached)
            #expect(engine.now(.realtime) >= deadline)
        }

        @Test("a read error from the kernel fails the sleepers with a LoopError, then the clock recovers")
        func readErrorFailsSleepers() async throws {
            let engine = SystemEngine()
            let task = Task { try await engine.sleep(until: engine.now(.suspending) + Self.longDelay, on: .suspending, waker: nil) }
            try #require(await waitUntil { engine.sleeperCount(on: .suspending) == 1 })
            try engine.injectReadError(on: .suspending, errno: EIO)
            let error = await #expect(throws: LoopError.self) { try await task.value }
            #expect(error?.code == .systemTimer)
            #expect(error?.message == "read(timerfd CLOCK_MONOTONIC) failed: EIO (Input/output error)")

            let deadline = engine.now(.suspending) + Self.shortDelay
            #expect(try await engine.sleep(until: deadline, on: .suspending, waker: nil) == .deadlineReached)
        }

        @Test("a non-shared engine closes its timerfds when it goes away")
        func releasesDescriptors() async throws {
            await warmUpSharedEngine()
            let baseline = openTimerDescriptors()
            var engine: SystemEngine? = SystemEngine()
            for clock in EngineClock.allCases {
                let deadline = engine!.now(clock) + 1_000_000
                _ = try await engine!.sleep(until: deadline, on: clock, waker: nil)
            }
            #expect(engine?.openTimerDescriptorCount == 3)
            #expect(openTimerDescriptors() - baseline == 3)
            engine = nil
            // The fds close in the Dispatch sources' cancel handlers, on the engine's queue.
            #expect(await waitUntil { openTimerDescriptors() == baseline })
        }

        @Test("a sleep on a closed timer throws instead of touching the old descriptor")
        func sleepOnClosedTimer() async throws {
            let timer = try ClockTimer(clock: .continuous)
            timer.close()
            let error = await #expect(throws: LoopError.self) {
                try await timer.sleep(until: timer.now + Self.longDelay)
            }
            #expect(error?.message == "the timer of CLOCK_BOOTTIME was closed")
        }

        @Test("closing a timer fails the sleepers still waiting on it")
        func closeFailsSleepers() async throws {
            let timer = try ClockTimer(clock: .suspending)
            let task = Task { try await timer.sleep(until: timer.now + Self.longDelay) }
            try #require(await waitUntil { timer.sleeperCount == 1 })
            timer.close()
            await #expect(throws: LoopError.self) { try await task.value }
        }

        @Test("a waker ends a sleep in progress with .interrupted")
        func wakerInterruptsSleep() async throws {
            let engine = SystemEngine()
            let waker = Waker()
            let task = Task { try await engine.sleep(until: engine.now(.continuous) + Self.longDelay, on: .continuous, waker: waker) }
            try #require(await waitUntil { engine.sleeperCount(on: .continuous) == 1 })
            waker.wake()
            #expect(try await task.value == .interrupted)
            #expect(engine.sleeperCount(on: .continuous) == 0)
            #expect(engine.armedDeadline(on: .continuous) == nil)
        }

        @Test("a wake that arrives between sleeps ends the next sleep at once")
        func pendingWakeEndsNextSleep() async throws {
            let engine = SystemEngine()
            let waker = Waker()
            // A completed sleep leaves nothing for the wake after it to end: it stays pending.
            let deadline = engine.now(.continuous) + Self.shortDelay
            #expect(try await engine.sleep(until: deadline, on: .continuous, waker: waker) == .deadlineReached)
            waker.wake()
            let started = ContinuousClock.now
            #expect(try await engine.sleep(until: engine.now(.continuous) + Self.longDelay, on: .continuous, waker: waker) == .interrupted)
            #expect(ContinuousClock.now - started < .seconds(5))
            #expect(engine.sleeperCount(on: .continuous) == 0)
        }

        @Test("a run's sleep leaves its waker armed at its deadline; a wake after it ends the next sleep, and a wake during it ends it")
        func runSleepWakerAfterDeadline() async throws {
            let engine = SystemEngine()
            let waker = Waker()
            guard case .timer(let timer) = try engine.route(until: engine.now(.continuous) + Self.longDelay, on: .continuous) else {
                Issue.record("a kernel engine routes a future deadline to its timer")
                return
            }
            // The timer does not disarm the waker of a sleeper it wakes at its deadline: the
            // wake below finds that sleeper gone and must stay pending for the next sleep.
            let deadline = engine.now(.continuous) + Self.shortDelay
            #expect(try await timer.sleep(until: deadline, interruptedBy: waker) == .deadlineReached)
            waker.wake()
            let started = ContinuousClock.now
            #expect(try await timer.sleep(until: engine.now(.continuous) + Self.longDelay, interruptedBy: waker) == .interrupted)
            #expect(ContinuousClock.now - started < .seconds(5))
            #expect(timer.sleeperCount == 0)
            // Armed again by a new sleep, the waker ends that one, however many stale arms came before.
            let sleeper = Task { try await timer.sleep(until: engine.now(.continuous) + Self.longDelay, interruptedBy: waker) }
            try #require(await waitUntil { timer.sleeperCount == 1 })
            waker.wake()
            #expect(try await sleeper.value == .interrupted)
            #expect(timer.sleeperCount == 0)
            #expect(engine.armedDeadline(on: .continuous) == nil)
        }

        @Test("wakes and cancellations racing with deadlines resume every sleeper exactly once")
        func wakerRacesDeadline() async throws {
            let engine = SystemEngine()
            let count = 1_000
            let deadline = engine.now(.suspending) + Self.shortDelay
            let wakers = (0..<count).map { _ in Waker() }
            let tasks = wakers.map { waker in
                Task { try await engine.sleep(until: deadline, on: .suspending, waker: waker) }
            }
            try await Task.sleep(for: .milliseconds(29))
            for (index, waker) in wakers.enumerated() {
                if index.isMultiple(of: 2) { waker.wake() } else { tasks[index].cancel() }
            }
            var outcomes = 0
            for task in tasks {
                switch await task.result {
                case .success(let reason): #expect(reason == .deadlineReached || reason == .interrupted)
                case .failure(let error): #expect(error is CancellationError)
                }
                outcomes += 1
            }
            #expect(outcomes == count)
            #expect(engine.sleeperCount(on: .suspending) == 0)
        }
    }
}

/// Numbers wakes in the order the woken tasks ran.
private final class WakeSequence: Sendable {
    private let counter = Atomic<Int>(0)

    func next() -> Int { counter.add(1, ordering: .relaxed).newValue }
}

/// The number of timerfds open in this process.
fileprivate func openTimerDescriptors() -> Int {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    var count = 0
    for name in names {
        let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)")
        if target == "anon_inode:[timerfd]" { count += 1 }
    }
    return count
}

/// Makes the shared engine open its fds now, so that they do not appear in the middle of a test
/// that counts descriptors.
fileprivate func warmUpSharedEngine() async {
    for clock in EngineClock.allCases {
        _ = try? await SystemEngine.shared.sleep(until: SystemEngine.shared.now(clock) + 1_000_000, on: clock, waker: nil)
    }
}
