import Foundation
import Loops
import LoopsTestKit
import Testing

@Suite("LoopsTestKit's VirtualClock")
struct VirtualClockTests {
    @Test("advance runs sleepers in deadline order and stops at each deadline")
    func sleepersInOrder() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loops = try [7, 3, 5].map { seconds in
            try Loop(seconds: Double(seconds), count: 2, clock: clock.loopClock) { loop in
                if loop.currentLoop == 1 { log.record("\(seconds)s") }
            }
        }
        for loop in loops { try loop.start() }
        await clock.advance(by: .seconds(10))
        #expect(log.events == ["3s@3", "5s@5", "7s@7"])
    }

    @Test("advance(to:) a date in the past does not move time; settle with no loops returns")
    func advanceToPast() async {
        let clock = VirtualClock(wallTime: Date(timeIntervalSince1970: 1_000_000))
        await clock.settle()
        await clock.advance(to: Date(timeIntervalSince1970: 999_000))
        #expect(clock.now == Date(timeIntervalSince1970: 1_000_000))
        await clock.advance(to: Date(timeIntervalSince1970: 1_000_030))
        #expect(clock.now == Date(timeIntervalSince1970: 1_000_030))
        #expect(clock.uptime == .seconds(1030))
    }

    @Test("advance waits for a body's own virtual sleeps, nested in child tasks")
    func nestedBodySleeps() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 10, count: 1, clock: clock.loopClock) { _ in
            async let first: Void = clock.sleep(for: .seconds(2))
            try await first
            log.record("after child sleep")
            try await clock.sleep(for: .seconds(1))
            log.record("body done")
        }
        try loop.start()
        await clock.advance(by: .seconds(5))
        #expect(log.events == ["after child sleep@2", "body done@3"])
        #expect(loop.isRunning == false)
    }

    @Test("a test task's own sleep on the clock wakes when time reaches it")
    func testTaskSleep() async throws {
        let clock = VirtualClock()
        let woke = LockedValue(false)
        let sleeper = Task {
            try await clock.sleep(for: .seconds(3))
            woke.withLock { $0 = true }
        }
        await clock.advance(by: .seconds(1))
        #expect(woke.withLock { $0 } == false)
        // The sleeper may not have registered yet when advance ran: advance until it wakes.
        for _ in 0..<100 where !woke.withLock({ $0 }) {
            await clock.advance(by: .seconds(3))
            await Task.yield()
        }
        try await sleeper.value
        #expect(woke.withLock { $0 })
    }

    @Test("cancelling a task asleep on the clock throws CancellationError at once")
    func cancelledSleep() async throws {
        let clock = VirtualClock()
        let sleeper = Task { try await clock.sleep(for: .seconds(60)) }
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
    }
    /// A cancellation that lands between the sleep's cancellation check and its insertion used
    /// to leave the sleeper in the heap until its deadline; inside a loop (an iteration's timeout
    /// watch cancelled as its body returned) that kept `advance` waiting for ever. Thousands of
    /// sleeps cancelled at scattered moments make that window come up; each must end at once.
    @Test("a sleep cancelled at any moment of its start ends at once, without time moving")
    func sleepsCancelledWhileStarting() async throws {
        let clock = VirtualClock()
        let attempts = 20_000
        let ended = LockedValue(0)
        let cancelledCleanly = LockedValue(0)
        var sleepers: [Task<Void, Never>] = []
        for attempt in 0..<attempts {
            let sleeper = Task.detached {
                do {
                    try await clock.sleep(for: .seconds(3600))
                } catch is CancellationError {
                    cancelledCleanly.withLock { $0 += 1 }
                } catch {}
                ended.withLock { $0 += 1 }
            }
            // Scatter the moment of cancellation over the sleeper's start on another thread.
            for _ in 0..<(attempt % 256) { _ = ended.withLock { $0 } }
            sleeper.cancel()
            sleepers.append(sleeper)
        }
        // Real time, bounded: a sleeper stranded in the heap never ends without time moving.
        let limit = ContinuousClock.now.advanced(by: .seconds(20))
        while ended.withLock({ $0 }) < attempts, ContinuousClock.now < limit {
            try await Task.sleep(for: .milliseconds(5))
        }
        let stranded = attempts - ended.withLock { $0 }
        // Free any stranded sleeper, so that a failure leaves no task behind.
        await clock.advance(by: .seconds(3601))
        for sleeper in sleepers { await sleeper.value }
        #expect(stranded == 0, "\(stranded) of \(attempts) cancelled sleeps stayed asleep")
        #expect(cancelledCleanly.withLock { $0 } == attempts)
        #expect(clock.uptime == .seconds(1000 + 3601))
    }
}
