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
