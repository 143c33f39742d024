import Foundation
import Loops
import LoopsTestKit
import Testing

@Suite("Relative intervals on virtual time")
struct LoopIntervalTests {
    @Test("the first iteration runs at start, iteration n at t0 + n·interval, without drift")
    func gridWithoutDrift() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 5, clock: clock.loopClock) { _ in
            log.record("body")
            try await clock.sleep(for: .milliseconds(1300))  // the body's own time must not shift the grid
        }
        try loop.start()
        await clock.advance(by: .seconds(1000))
        let times = log.events.map { $0.replacingOccurrences(of: "body@", with: "") }
        #expect(times.count == 201)
        #expect(times.first == "0")
        #expect(times.last == "1000")
        #expect(times == (0...200).map { String($0 * 5) })
        loop.cancel()
        await clock.settle()
    }

    @Test("intervals made once and shared between loops keep the parts each loop was given, past the shared ones too")
    func sharedIntervalsKeepTheirParts() throws {
        // 0.1 + 0.2 and 0.3 are different parts; 60 s and 1 min are the same interval written
        // differently. Each loop reports its own parts, however many intervals came before.
        let sum = 0.1 + 0.2
        for round in 0..<2 {
            for extra in 0..<80 {
                let written = try Loop(seconds: Double(extra) + sum) { _ in }
                #expect(written.seconds == Double(extra) + sum, "round \(round)")
                let exact = try Loop(seconds: Double(extra) + 0.3) { _ in }
                #expect(exact.seconds == Double(extra) + 0.3, "round \(round)")
                let inMinutes = try Loop(seconds: Double(extra), minutes: 1) { _ in }
                #expect(inMinutes.seconds == Double(extra) && inMinutes.minutes == 1, "round \(round)")
                let inSeconds = try Loop(seconds: Double(extra) + 60) { _ in }
                #expect(inSeconds.seconds == Double(extra) + 60 && inSeconds.minutes == 0, "round \(round)")
                #expect(Schedule.every(.seconds(extra)) == Schedule.every(.seconds(extra)))
                #expect(Schedule.every(.seconds(extra)) != Schedule.every(.seconds(extra + 1)))
            }
        }
    }

    @Test("seconds, minutes and hours add up; only the total is validated (-1 s + 1 min = 59 s)")
    func componentsAddUp() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: -1, minutes: 1, count: 3, clock: clock.loopClock) { _ in log.record("body") }
        #expect(loop.seconds == -1)
        #expect(loop.minutes == 1)
        #expect(loop.hours == 0)
        #expect(loop.times == nil)
        try loop.start()
        await clock.advance(by: .seconds(200))
        #expect(log.events == ["body@0", "body@59", "body@118"])
    }

    @Test("overrun with .delay: one run at once, then re-anchored to that moment")
    func overrunDelay() async throws {
        let log = try await overrunRun(policy: .delay)
        #expect(log == ["body@0", "body@12", "body@17", "body@22"])
    }

    @Test("overrun with .burst: one run per missed slot, then back on the grid")
    func overrunBurst() async throws {
        let log = try await overrunRun(policy: .burst)
        #expect(log == ["body@0", "body@12", "body@12", "body@15", "body@20"])
    }

    @Test("overrun with .skip: one run at once, then the original grid")
    func overrunSkip() async throws {
        let log = try await overrunRun(policy: .skip)
        #expect(log == ["body@0", "body@12", "body@15", "body@20"])
    }

    @Test("the default policy for intervals is .delay")
    func defaultPolicyIsDelay() async throws {
        let log = try await overrunRun(policy: nil)
        #expect(log == ["body@0", "body@12", "body@17", "body@22"])
    }

    /// Interval 5 s; the first body takes 12 s, the others none.
    private func overrunRun(policy: MissedTickPolicy?) async throws -> [String] {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 5, missedTicks: policy, clock: clock.loopClock) { loop in
            log.record("body")
            if loop.currentLoop == 0 { try await clock.sleep(for: .seconds(12)) }
        }
        try loop.start()
        await clock.advance(by: .seconds(22))
        loop.cancel()
        await clock.settle()
        return log.events
    }

    @Test("interval 0 runs back to back, yielding between iterations")
    func zeroInterval() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 0, count: 5, clock: clock.loopClock) { _ in log.record("body") }
        try loop.start()
        await clock.settle()
        #expect(log.events == Array(repeating: "body@0", count: 5))
        #expect(loop.isRunning == false)
    }

    @Test("a simulated suspend is counted by .continuous, not by .suspending")
    func continuousVersusSuspending() async throws {
        let clock = VirtualClock()
        let continuousLog = EventLog(clock)
        let suspendingLog = EventLog(clock)
        let continuous = try Loop(seconds: 10, clock: clock.loopClock) { _ in continuousLog.record("body") }
        let suspending = try Loop(seconds: 10, clock: clock.suspendingLoopClock) { _ in suspendingLog.record("body") }
        try continuous.start()
        try suspending.start()
        await clock.advance(by: .seconds(5))
        await clock.suspend(for: .seconds(30))  // now 35 s of continuous time, 5 s of suspending time
        await clock.advance(by: .seconds(1))    // 36 / 6
        // continuous: 0, then the overrun run on resume at 35 (delay), next due at 45.
        #expect(continuousLog.events == ["body@0", "body@35"])
        // suspending: only 6 s have passed for it; its next run is due at suspending 10 = 40 here.
        #expect(suspendingLog.events == ["body@0"])
        await clock.advance(by: .seconds(4))
        #expect(suspendingLog.events == ["body@0", "body@40"])
        continuous.cancel()
        suspending.cancel()
        await clock.settle()
    }

    @Test("nextIteration is nil before start, the next scheduled instant while running, nil after stop()")
    func nextIteration() async throws {
        let clock = VirtualClock()
        let start = clock.now
        let seen = EventLog(clock)
        let loop = try Loop(seconds: 5, clock: clock.loopClock) { loop in
            // During the body of iteration n, the next one is scheduled at t0 + (n+1)·5 s.
            let next = loop.nextIteration.map { $0.timeIntervalSince(start) }
            seen.record("next=\(next.map { String(Int($0.rounded())) } ?? "nil")")
        }
        #expect(loop.nextIteration == nil)
        try loop.start()
        await clock.advance(by: .seconds(7))
        #expect(seen.events == ["next=5@0", "next=10@5"])
        let sleeping = try #require(loop.nextIteration)
        #expect(abs(sleeping.timeIntervalSince(start) - 10) < 1e-6)
        loop.stop()
        #expect(loop.nextIteration == nil)
        await clock.settle()
        #expect(loop.nextIteration == nil)
    }

    @Test("a wall-clock step moves an interval loop's nextIteration, not its schedule")
    func wallStepRecomputesNextIterationOnly() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 60, clock: clock.loopClock) { _ in log.record("body") }
        try loop.start()
        await clock.advance(by: .seconds(10))
        let before = try #require(loop.nextIteration)
        await clock.stepWallClock(by: .seconds(3600))
        let after = try #require(loop.nextIteration)
        #expect(abs(after.timeIntervalSince(before) - 3600) < 1e-3)
        await clock.advance(by: .seconds(50))
        #expect(log.events == ["body@0", "body@60"])
        await clock.stepWallClock(by: .seconds(-7200))
        await clock.advance(by: .seconds(60))
        #expect(log.events == ["body@0", "body@60", "body@120"])
        loop.cancel()
        await clock.settle()
    }
}
