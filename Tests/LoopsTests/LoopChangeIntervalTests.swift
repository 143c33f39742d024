import Foundation
import Loops
import LoopsTestKit
import Testing

@Suite("changeInterval while running")
struct LoopChangeIntervalTests {
    @Test("mid-sleep: next = last scheduled + new interval, the pending sleep is re-armed")
    func midSleepShorter() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 10, clock: clock.loopClock) { _ in log.record("body") }
        try loop.start()
        await clock.advance(by: .seconds(1))
        try loop.changeInterval(seconds: 4)
        #expect(loop.seconds == 4)
        await clock.advance(by: .seconds(8))
        #expect(log.events == ["body@0", "body@4", "body@8"])
        loop.cancel()
        await clock.settle()
    }

    @Test("mid-sleep to a longer interval postpones the pending wake")
    func midSleepLonger() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 10, clock: clock.loopClock) { _ in log.record("body") }
        try loop.start()
        await clock.advance(by: .seconds(3))
        try loop.changeInterval(minutes: 1)
        #expect(loop.minutes == 1)
        #expect(loop.seconds == 0)
        await clock.advance(by: .seconds(100))
        #expect(log.events == ["body@0", "body@60"])
        loop.cancel()
        await clock.settle()
    }

    @Test("mid-sleep to an interval whose slot has passed: an overrun, handled by the policy")
    func midSleepAlreadyDue() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 10, clock: clock.loopClock) { _ in log.record("body") }
        try loop.start()
        await clock.advance(by: .seconds(5))
        try loop.changeInterval(seconds: 2)  // 0 + 2 has passed: .delay runs at once and re-anchors
        await clock.advance(by: .seconds(5))
        #expect(log.events == ["body@0", "body@5", "body@7", "body@9"])
        loop.cancel()
        await clock.settle()
    }

    @Test("mid-body: the iteration after the body uses the new interval")
    func midBody() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 10, clock: clock.loopClock) { _ in
            log.record("body")
            try await clock.sleep(for: .seconds(2))
        }
        try loop.start()
        await clock.advance(by: .seconds(1))
        try loop.changeInterval(seconds: 3)
        await clock.advance(by: .seconds(6))
        #expect(log.events == ["body@0", "body@3", "body@6"])
        loop.cancel()
        await clock.settle()
    }

    @Test("invalid input leaves the old schedule intact")
    func invalidChangeKeepsSchedule() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 5, clock: clock.loopClock) { _ in log.record("body") }
        try loop.start()
        #expect(throws: LoopError.self) { try loop.changeInterval(seconds: -10) }
        #expect(throws: LoopError.self) { try loop.changeInterval(seconds: .nan) }
        #expect(throws: LoopError.self) { try loop.changeInterval(times: []) }
        #expect(throws: LoopError.self) { try loop.changeSchedule(.every(.seconds(-1))) }
        #expect(loop.seconds == 5)
        await clock.advance(by: .seconds(10))
        #expect(log.events == ["body@0", "body@5", "body@10"])
        loop.cancel()
        await clock.settle()
    }

    @Test("changeInterval on a loop that is not running only changes the schedule")
    func changeWhenIdle() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 5, clock: clock.loopClock) { _ in log.record("body") }
        try loop.changeInterval(hours: 1)
        #expect(loop.hours == 1)
        #expect(loop.schedule == .every(.seconds(3600)))
        try loop.start()
        await clock.advance(by: .seconds(3600))
        #expect(log.events == ["body@0", "body@3600"])
        loop.cancel()
        await clock.settle()
    }
}

@Suite("nextIteration right after a schedule change")
struct LoopNextIterationAfterChangeTests {
    @Test("500 ms → 250 ms at +100 ms: nextIteration says +250 ms as soon as changeInterval returns")
    func shorterIntervalShowsAtOnce() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 0.5, clock: clock.loopClock) { _ in log.record("body") }
        let start = clock.now
        try loop.start()
        await clock.advance(by: .milliseconds(100))
        #expect(abs(loop.nextIteration!.timeIntervalSince(start) - 0.5) < 1e-6)
        try loop.changeInterval(seconds: 0.25)
        #expect(abs(loop.nextIteration!.timeIntervalSince(start) - 0.25) < 1e-6)
        await clock.advance(by: .milliseconds(450))
        #expect(log.events == ["body@0", "body@0.25", "body@0.5"])
        #expect(abs(loop.nextIteration!.timeIntervalSince(start) - 0.75) < 1e-6)
        loop.cancel()
        await clock.settle()
    }

    @Test("to an interval whose slot has passed: nextIteration is now; to times of day: the next slot after now")
    func passedSlotAndWallSchedule() async throws {
        let clock = VirtualClock()
        let bodies = Counter()
        let loop = try Loop(seconds: 10, clock: clock.loopClock) { _ in bodies.increment() }
        try loop.start()
        await clock.advance(by: .seconds(5))
        let now = clock.now
        try loop.changeInterval(seconds: 2)
        // The change wakes the loop, which runs the slot that is due at once, on its own task
        // (virtual time need not move for that): read right after the call, nextIteration is
        // now, or — when the loop was quicker than this read — the slot after the one it ran.
        let next = loop.nextIteration!.timeIntervalSince(now)
        let ranAlready = bodies.current == 2
        #expect(abs(next - (ranAlready ? 2 : 0)) < 1e-6, "next in \(next) s, bodies: \(bodies.current)")
        await clock.advance(by: .zero)
        #expect(bodies.current == 2)
        #expect(abs(loop.nextIteration!.timeIntervalSince(now) - 2) < 1e-6)
        await clock.advance(by: .seconds(1))
        let nextMinute = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: clock.now)
        let slot = try TimeOfDay(hour: (nextMinute.hour! + 1) % 24)
        try loop.changeInterval(times: [slot])
        let expected = try #require(Schedule.times([slot]).nextFire(onOrAfter: clock.now))
        #expect(loop.nextIteration == expected)
        loop.cancel()
        await clock.settle()
    }
}
