import Foundation
import Loops
import LoopsTestKit
import Testing

/// What a policy test's loop saw: events in virtual seconds and the errors `onError` got.
private final class PolicyProbe: Sendable {
    let log: EventLog
    private let errors = LockedValue<[any Error]>([])

    init(_ clock: VirtualClock) { log = EventLog(clock) }

    func attach(to loop: Loop) {
        loop.onError { _, error in
            self.errors.withLock { $0.append(error) }
            self.log.record("onError")
        }
        loop.afterLoop { _ in self.log.record("after") }
    }

    var errorCodes: [LoopError.Code?] { errors.withLock { $0.map { ($0 as? LoopError)?.code } } }
    var firstError: (any Error)? { errors.withLock { $0.first } }
}

@Suite("Policies: timeout, failure policy, randomized delay, first iteration (virtual time)")
struct LoopPolicyTests {
    // MARK: timeout

    @Test("a body past its timeout is cancelled; the iteration fails with LoopError .timedOut through onError, then the loop ends")
    func timeoutEndsTheLoop() async throws {
        let clock = VirtualClock()
        let probe = PolicyProbe(clock)
        let loop = try Loop(seconds: 5, name: "slow", timeout: .seconds(2), clock: clock.loopClock) { _ in
            probe.log.record("body")
            do {
                try await clock.sleep(for: .seconds(10))
            } catch {
                probe.log.record("cancelled")
                throw error
            }
        }
        probe.attach(to: loop)
        try loop.start()
        await clock.advance(by: .seconds(30))
        #expect(probe.log.events == ["body@0", "cancelled@2", "onError@2", "after@2"])
        #expect(probe.errorCodes == [.timedOut])
        #expect("\(probe.firstError!)".contains("slow"))
        #expect("\(probe.firstError!)".contains("2.0 s"))
        #expect(loop.failed)
        #expect(!loop.isRunning)
    }

    @Test("a body within its timeout is not touched")
    func timeoutNotReached() async throws {
        let clock = VirtualClock()
        let probe = PolicyProbe(clock)
        let loop = try Loop(seconds: 5, count: 3, timeout: .seconds(2), clock: clock.loopClock) { _ in
            probe.log.record("body")
            try await clock.sleep(for: .milliseconds(1900))
        }
        probe.attach(to: loop)
        try loop.start()
        await clock.advance(by: .seconds(30))
        #expect(probe.log.events == ["body@0", "body@5", "body@10", "after@11.9"])
        #expect(probe.errorCodes.isEmpty)
    }

    @Test("with onFailure: .keepSchedule a timed-out iteration is reported and the grid goes on")
    func timeoutKeepsSchedule() async throws {
        let clock = VirtualClock()
        let probe = PolicyProbe(clock)
        let attempts = Counter()
        let loop = try Loop(
            seconds: 5,
            count: 3,
            timeout: .seconds(2),
            onFailure: .keepSchedule,
            clock: clock.loopClock
        ) { _ in
            probe.log.record("body")
            if attempts.increment() == 2 { try await clock.sleep(for: .seconds(60)) }
        }
        probe.attach(to: loop)
        try loop.start()
        await clock.advance(by: .seconds(60))
        // Iteration 1 (at 5 s) times out at 7 s; the failed one is not counted, so a third
        // success is needed: at 15 s.
        #expect(probe.log.events == ["body@0", "body@5", "onError@7", "body@10", "body@15", "after@15"])
        #expect(probe.errorCodes == [.timedOut])
        #expect(loop.currentLoop == 3)
        #expect(loop.failed)
    }

    @Test("a timeout is retried like any error when LoopError is a handled type")
    func timeoutRetriedWhenHandled() async throws {
        let clock = VirtualClock()
        let probe = PolicyProbe(clock)
        let attempts = Counter()
        let loop = try Loop(seconds: 60, count: 1, timeout: .seconds(2), clock: clock.loopClock) { _ in
            probe.log.record("body")
            if attempts.increment() == 1 { try await clock.sleep(for: .seconds(60)) }
        }
        loop.addErrorType(LoopError.self)
        loop.setBackoffJitter { _ in 1 }
        probe.attach(to: loop)
        try loop.start()
        await clock.advance(by: .seconds(30))
        #expect(probe.log.events == ["body@0", "body@3", "after@3"])
        #expect(probe.errorCodes.isEmpty)
        #expect(!loop.failed)
    }

    @Test("cancel() during a body under a timeout: afterLoop, no onError, not failed")
    func cancelUnderTimeout() async throws {
        let clock = VirtualClock()
        let probe = PolicyProbe(clock)
        let loop = try Loop(seconds: 5, timeout: .seconds(20), clock: clock.loopClock) { _ in
            probe.log.record("body")
            try await clock.sleep(for: .seconds(60))
        }
        probe.attach(to: loop)
        try loop.start()
        await clock.advance(by: .seconds(3))
        loop.cancel()
        await clock.advance(by: .seconds(30))
        #expect(probe.log.events == ["body@0", "after@3"])
        #expect(!loop.failed)
    }

    // MARK: failure policy

    @Test("onFailure: .keepSchedule reports an unhandled error and keeps the grid; stop() ends the run")
    func keepScheduleContinues() async throws {
        let clock = VirtualClock()
        let probe = PolicyProbe(clock)
        let attempts = Counter()
        let loop = try Loop(seconds: 5, onFailure: .keepSchedule, clock: clock.loopClock) { _ in
            probe.log.record("body")
            if attempts.increment() == 2 { throw UnhandledTestError() }
        }
        probe.attach(to: loop)
        try loop.start()
        await clock.advance(by: .seconds(16))
        #expect(probe.log.events == ["body@0", "body@5", "onError@5", "body@10", "body@15"])
        #expect(loop.failed)
        #expect(loop.isRunning)
        #expect(loop.currentLoop == 3)
        #expect(probe.firstError is UnhandledTestError)
        loop.stop()
        await clock.settle()
        #expect(probe.log.events.last == "after@16")
    }

    @Test("onFailure: .endLoop (the default) ends the run at the first unhandled error")
    func endLoopIsTheDefault() async throws {
        let clock = VirtualClock()
        let probe = PolicyProbe(clock)
        let loop = try Loop(seconds: 5, clock: clock.loopClock) { _ in
            probe.log.record("body")
            throw UnhandledTestError()
        }
        probe.attach(to: loop)
        try loop.start()
        await clock.advance(by: .seconds(16))
        #expect(probe.log.events == ["body@0", "onError@0", "after@0"])
    }

    // MARK: randomized delay

    @Test("a randomized delay moves each run, never the grid; nextIteration reports the slot")
    func randomizedDelayKeepsTheGrid() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let draws = LockedValue([1, 4, 2, 3].map { Int64($0) * 1_000_000_000 })
        let nextSeen = LockedValue<[Date?]>([])
        let start = clock.now
        let loop = try Loop(seconds: 10, count: 4, randomizedDelay: .upTo(.seconds(5)), clock: clock.loopClock) { loop in
            log.record("body")
            nextSeen.withLock { $0.append(loop.nextIteration) }
        }
        loop.setRandomDelay { upper in
            #expect(upper == 5_000_000_000)
            return draws.withLock { $0.removeFirst() }
        }
        try loop.start()
        await clock.advance(by: .seconds(60))
        #expect(log.events == ["body@1", "body@14", "body@22", "body@33"])
        // While iteration n runs, the next one is reported at its slot: start + 10·(n+1).
        let reported = nextSeen.withLock { $0 }.map { $0.map { Int(($0.timeIntervalSince(start)).rounded()) } }
        #expect(reported == [10, 20, 30, 40])
    }

    @Test("a fixed randomized delay is the same for every iteration and every loop of that name, and differs between names")
    func fixedDelayIsStablePerName() async throws {
        func offsets(named name: String) async throws -> [String] {
            let clock = VirtualClock()
            let log = EventLog(clock)
            let loop = try Loop(seconds: 100, count: 3, name: name, randomizedDelay: .fixed(upTo: .seconds(60)), clock: clock.loopClock) { _ in
                log.record("body")
            }
            try loop.start()
            await clock.advance(by: .seconds(400))
            return log.events
        }
        let backup = try await offsets(named: "backup")
        #expect(backup.count == 3)
        #expect(try await offsets(named: "backup") == backup)
        // The offset is below the maximum and the grid keeps its 100 s steps.
        let seconds = backup.map { Double($0.dropFirst("body@".count))! }
        #expect(seconds[0] >= 0 && seconds[0] <= 60)
        #expect(abs(seconds[1] - seconds[0] - 100) < 1e-6)
        #expect(abs(seconds[2] - seconds[1] - 100) < 1e-6)
        // FNV-1a of the name, computed here independently: the offset is hash mod (max + 1).
        var hash: UInt64 = 14_695_981_039_346_656_037
        for byte in "backup".utf8 { hash = (hash ^ UInt64(byte)) &* 1_099_511_628_211 }
        #expect(abs(seconds[0] - Double(hash % 60_000_000_001) / 1e9) < 1e-6)
        #expect(try await offsets(named: "report") != backup)
    }

    @Test("a randomized delay on a wall-clock schedule: 09:00 runs at 09:00 plus the delay, the next slot is still 09:00")
    func randomizedDelayOnTimes() async throws {
        let clock = VirtualClock()  // 2026-01-01T00:00:00Z
        let log = EventLog(clock)
        let loop = try Loop(
            times: [try TimeOfDay(hour: 9)],
            count: 2,
            randomizedDelay: .upTo(.seconds(300)),
            clock: clock.loopClock
        ) { _ in log.record("body") }
        loop.setRandomDelay { _ in 120_000_000_000 }
        try loop.start()
        await clock.advance(by: .seconds(8 * 3600))
        #expect(loop.nextIteration == Date(timeIntervalSince1970: 1_767_225_600 + 9 * 3600))
        await clock.advance(by: .seconds(2 * 86400))
        #expect(log.events == ["body@\(9 * 3600 + 120)", "body@\(86400 + 9 * 3600 + 120)"])
    }

    // MARK: first iteration

    @Test("firstIteration: .afterOneInterval starts the grid one interval after start")
    func firstAfterOneInterval() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 5, count: 3, firstIteration: .afterOneInterval, clock: clock.loopClock) { _ in
            log.record("body")
        }
        let start = clock.now
        try loop.start()
        await clock.settle()
        #expect(loop.nextIteration == start.addingTimeInterval(5))
        await clock.advance(by: .seconds(30))
        #expect(log.events == ["body@5", "body@10", "body@15"])
    }

    @Test("firstIteration: .at(future) runs at that instant, then every interval from it")
    func firstAtFutureInstant() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 5, count: 3, firstIteration: .at(clock.now.addingTimeInterval(7)), clock: clock.loopClock) { _ in
            log.record("body")
        }
        try loop.start()
        await clock.advance(by: .seconds(30))
        #expect(log.events == ["body@7", "body@12", "body@17"])
    }

    @Test("firstIteration: .at(past) makes the passed slots missed ones, resolved by the policy", arguments: [
        (MissedTickPolicy.skip, ["body@0", "body@3", "body@8"]),
        (MissedTickPolicy.burst, ["body@0", "body@0", "body@0", "body@3"]),
        (MissedTickPolicy.delay, ["body@0", "body@5", "body@10"]),
    ])
    func firstAtPastInstant(policy: MissedTickPolicy, expected: [String]) async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        // Slots at −12, −7, −2 s have passed; the grid goes on at 3, 8, …
        let loop = try Loop(
            seconds: 5,
            count: expected.count,
            missedTicks: policy,
            firstIteration: .at(clock.now.addingTimeInterval(-12)),
            clock: clock.loopClock
        ) { _ in log.record("body") }
        try loop.start()
        await clock.advance(by: .seconds(30))
        #expect(log.events == expected)
    }

    @Test("firstIteration: .at(instant) on times of day: the first slot at or after the instant")
    func firstAtOnTimes() async throws {
        let clock = VirtualClock()  // 2026-01-01T00:00:00Z
        let log = EventLog(clock)
        let loop = try Loop(
            times: [try TimeOfDay(hour: 9)],
            count: 1,
            firstIteration: .at(clock.now.addingTimeInterval(86400 + 8 * 3600)),
            clock: clock.loopClock
        ) { _ in log.record("body") }
        try loop.start()
        await clock.advance(by: .seconds(3 * 86400))
        #expect(log.events == ["body@\(86400 + 9 * 3600)"])
    }

    // MARK: bad options

    @Test("bad options get a LoopError .invalidOption naming the value", arguments: [
        ("timeout", Duration.zero, "0"),
        ("timeout", Duration.seconds(-3), "-3"),
    ])
    func badTimeout(option: String, value: Duration, shown: String) throws {
        let error = #expect(throws: LoopError.self) { try Loop(seconds: 1, timeout: value) { _ in } }
        #expect(error?.code == .invalidOption)
        #expect(error?.message.contains("timeout") == true)
        #expect(error?.message.contains(shown) == true)
    }

    @Test("a negative randomized delay and an empty name are rejected")
    func badDelayAndName() throws {
        let delay = #expect(throws: LoopError.self) { try Loop(seconds: 1, randomizedDelay: .upTo(.seconds(-1))) { _ in } }
        #expect(delay?.code == .invalidOption)
        #expect(delay?.message.contains("-1") == true)
        let name = #expect(throws: LoopError.self) { try Loop(seconds: 1, name: "") { _ in } }
        #expect(name?.code == .invalidOption)
        #expect(name?.message.contains("name") == true)
    }
}
