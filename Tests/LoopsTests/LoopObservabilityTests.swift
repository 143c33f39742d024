import Foundation
import InMemoryTracing
import Logging
import Loops
import LoopsTestKit
import MetricsTestKit
import Testing
import Tracing

@testable import Loops

@Suite("Operations: names, registry, status, health, metrics, spans (virtual time)")
struct LoopObservabilityTests {
    // MARK: names

    @Test("a loop's name is the one given, else File.swift:line of its creation")
    func names() throws {
        let line = #line + 1
        let unnamed = try Loop(seconds: 1) { _ in }
        #expect(unnamed.name == "LoopsTests/LoopObservabilityTests.swift:\(line)")
        let named = try Loop(seconds: 1, name: "flush") { _ in }
        #expect(named.name == "flush")
        let times = try Loop(times: [try TimeOfDay(hour: 1)], name: "nightly") { _ in }
        #expect(times.name == "nightly")
    }

    // MARK: registry

    @Test("Loop.registered lists started loops in start order, weakly; unstarted loops are not listed")
    func registryListsStartedLoops() async throws {
        let clock = VirtualClock()
        var first: Loop? = try Loop(seconds: 5, count: 1, name: "first", clock: clock.loopClock) { _ in }
        let second = try Loop(seconds: 5, name: "second", clock: clock.loopClock) { _ in }
        let unstarted = try Loop(seconds: 5, name: "unstarted", clock: clock.loopClock) { _ in }
        try second.start()
        try first!.start()
        func listed() -> [ObjectIdentifier] {
            let ours = Set([first, second, unstarted].compactMap { $0.map(ObjectIdentifier.init) })
            return Loop.registered.map(ObjectIdentifier.init).filter(ours.contains)
        }
        #expect(listed() == [ObjectIdentifier(second), ObjectIdentifier(first!)])
        await clock.advance(by: .seconds(1))
        #expect(first?.isRunning == false)
        // The registry does not keep a finished loop alive. The ended run's task lets go of
        // the loop when it is torn down, which on a slow machine (TSan) may come a little
        // after `isRunning` turned false: the test waits for that, not for the registry.
        weak let weakFirst = first
        first = nil
        #expect(await waitUntil { weakFirst == nil })
        #expect(listed() == [ObjectIdentifier(second)])
        second.cancel()
        await clock.settle()
        _ = unstarted
    }

    @Test("Loop.registered holds a running loop nobody else keeps, lets it go when it ends, and keeps start order when places are reused")
    func registryHoldsRunningLoopsAndReusesPlaces() async throws {
        let clock = VirtualClock()
        // Started and dropped at once: only its run keeps it, and the registry lists it.
        weak var dropped: Loop?
        do {
            let loop = try Loop(seconds: 5, count: 2, name: "dropped", clock: clock.loopClock) { _ in }
            try loop.start()
            dropped = loop
        }
        #expect(dropped != nil && Loop.registered.contains { $0 === dropped })
        await clock.advance(by: .seconds(6))
        #expect(await waitUntil { dropped == nil }, "a loop whose runs ended is held weakly")
        // Places freed by deallocated loops are reused; the order stays the order of starts.
        var loops: [Loop] = []
        for index in 0..<6 {
            let loop = try Loop(seconds: 5, count: 1, name: "reused \(index)", clock: clock.loopClock) { _ in }
            try loop.start()
            loops.append(loop)
        }
        await clock.advance(by: .seconds(1))
        let firstThree = loops.prefix(3).map(ObjectIdentifier.init)
        weak let released0 = loops[0]
        weak let released1 = loops[1]
        weak let released2 = loops[2]
        loops.removeFirst(3)
        #expect(await waitUntil { released0 == nil && released1 == nil && released2 == nil })
        var later: [Loop] = []
        for index in 0..<3 {
            let loop = try Loop(seconds: 5, name: "later \(index)", clock: clock.loopClock) { _ in }
            try loop.start()
            later.append(loop)
        }
        let ours = Set((loops + later).map(ObjectIdentifier.init))
        let listed = Loop.registered.map(ObjectIdentifier.init).filter { ours.contains($0) || firstThree.contains($0) }
        #expect(listed == (loops + later).map(ObjectIdentifier.init))
        for loop in later { loop.cancel() }
        await clock.settle()
    }

    @Test("status: activity, iteration, next iteration, last start and duration, last error, consecutive failures")
    func statusFollowsTheRun() async throws {
        let clock = VirtualClock()
        let attempts = Counter()
        let loop = try Loop(seconds: 10, name: "status", clock: clock.loopClock) { _ in
            let attempt = attempts.increment()
            try await clock.sleep(for: .seconds(2))
            if attempt == 2 || attempt == 3 { throw SomeTransientError() }
        }
        loop.setBackoffJitter { _ in 1 }
        let idle = loop.status
        #expect(idle.activity == .idle)
        #expect(idle.lastStart == nil)
        #expect(idle.name == "status")
        #expect(idle.schedule == "\(loop.schedule)")
        let start = clock.now
        try loop.start()
        await clock.advance(by: .seconds(1))
        var status = loop.status
        #expect(status.activity == .runningBody)
        #expect(status.lastStart == start)
        await clock.advance(by: .seconds(2))
        status = loop.status
        #expect(status.activity == .sleeping)
        #expect(status.currentLoop == 1)
        #expect(status.lastDuration == .seconds(2))
        #expect(status.nextIteration == start.addingTimeInterval(10))
        #expect(status.consecutiveFailures == 0)
        // Iteration 1 (at 10 s) fails at 12 s, is retried at 13 s, fails at 15 s, retried at 16 s.
        await clock.advance(by: .seconds(9.5))
        status = loop.status
        #expect(status.activity == .retrying)
        #expect(status.consecutiveFailures == 1)
        #expect(status.lastError is SomeTransientError)
        // Iteration 1 runs for the slot at 10 s: the next one is at 20 s, also during retries.
        #expect(status.nextIteration == start.addingTimeInterval(20))
        await clock.advance(by: .seconds(3))
        #expect(loop.status.consecutiveFailures == 2)
        await clock.advance(by: .seconds(3))
        status = loop.status
        #expect(status.consecutiveFailures == 0)
        #expect(status.lastError == nil)
        #expect(status.currentLoop == 2)
        #expect(status.lastStart == start.addingTimeInterval(16))
        #expect("\(status)".hasPrefix("status: sleeping, iteration 2"))
        loop.cancel()
        await clock.settle()
        #expect(loop.status.activity == .idle)
    }

    // MARK: health

    @Test("health: a body past its stall timeout is .stalled, healthy again once it returns")
    func stalledBody() async throws {
        let clock = VirtualClock()
        let loop = try Loop(seconds: 60, clock: clock.loopClock) { _ in
            try await clock.sleep(for: .seconds(100))
        }
        try loop.start()
        await clock.advance(by: .seconds(10))
        #expect(loop.health(stallTimeout: .seconds(30)) == .healthy)
        await clock.advance(by: .seconds(21))
        #expect(loop.health(stallTimeout: .seconds(30)) == .stalled(.runningBody, for: .seconds(31)))
        #expect(loop.health(stallTimeout: nil) == .healthy)
        await clock.advance(by: .seconds(70))
        #expect(loop.health(stallTimeout: .seconds(30)) == .healthy)
        loop.cancel()
        await clock.settle()
    }

    @Test("health: a sleep past its deadline by more than the tolerance is .overdue (state machine)")
    func overdueSleep() throws {
        var machine = LoopStateMachine(
            schedule: try .every(seconds: 10, minutes: 0, hours: 0),
            count: nil,
            reconnect: true,
            missedTicks: nil,
            intervalClock: .continuous,
            logger: Logger(label: "loop-observability-tests")
        )
        let anchor = RunAnchor(elapsed: 0, wall: Date(timeIntervalSince1970: 0))
        let admission = try machine.admit(at: anchor, stopped: false)
        _ = machine.runBegins(admission.id)
        _ = machine.iterationsBegin(admission.id, anchor: anchor, now: LoopNow(elapsed: 0, wall: 0))
        _ = machine.bodySucceeded(admission.id, now: LoopNow(elapsed: 1_000_000_000, wall: 1_000_000_000))
        let tolerance: Int64 = 5_000_000_000
        #expect(machine.health(now: LoopNow(elapsed: 14_000_000_000, wall: 0), stallTimeout: nil, tolerance: tolerance) == .healthy)
        #expect(
            machine.health(now: LoopNow(elapsed: 16_000_000_000, wall: 0), stallTimeout: nil, tolerance: tolerance)
                == .overdue(by: .seconds(6))
        )
    }

    @Test("health: a loop that ended by an unhandled error is .failed; one that ended by count is healthy")
    func failedLoop() async throws {
        let clock = VirtualClock()
        let failing = try Loop(seconds: 5, clock: clock.loopClock) { _ in throw UnhandledTestError() }
        failing.onError { _, _ in }
        let counted = try Loop(seconds: 5, count: 1, clock: clock.loopClock) { _ in }
        try failing.start()
        try counted.start()
        await clock.advance(by: .seconds(1))
        #expect(failing.health() == .failed("UnhandledTestError()"))
        #expect(!failing.health().isHealthy)
        #expect(counted.health() == .healthy)
    }

    // MARK: metrics

    @Test("metrics: iterations, retried and unhandled errors, timeouts, missed ticks, body duration and wake lateness, dimension loop")
    func metrics() async throws {
        let clock = VirtualClock()
        let metrics = TestMetrics()
        let attempts = Counter()
        let loop = try Loop(seconds: 5, count: 3, name: "measured", clock: clock.loopClock, metrics: metrics) { _ in
            let attempt = attempts.increment()
            try await clock.sleep(for: .milliseconds(1300))
            if attempt == 2 { throw SomeTransientError() }
        }
        loop.setBackoffJitter { _ in 1 }
        try loop.start()
        await clock.advance(by: .seconds(30))
        let dimensions = [("loop", "measured")]
        #expect(try metrics.expectCounter("loops_iterations_total", dimensions).totalValue == 3)
        #expect(try metrics.expectCounter("loops_retried_errors_total", dimensions).totalValue == 1)
        #expect(try metrics.expectCounter("loops_unhandled_errors_total", dimensions).totalValue == 0)
        #expect(try metrics.expectCounter("loops_timeouts_total", dimensions).totalValue == 0)
        // Four attempts of 1.3 s each (one failed and retried).
        #expect(try metrics.expectTimer("loops_body_duration_seconds", dimensions).values == Array(repeating: 1_300_000_000, count: 4))
        // Virtual time wakes exactly: three iterations, each on time.
        #expect(try metrics.expectTimer("loops_wake_lateness_seconds", dimensions).values == [0, 0, 0])
    }

    @Test("metrics: an overrun counts the slots without an iteration of their own; timeouts and unhandled errors are counted")
    func missedTicksAndTimeouts() async throws {
        let clock = VirtualClock()
        let metrics = TestMetrics()
        let attempts = Counter()
        let loop = try Loop(
            seconds: 5,
            count: 3,
            name: "overrun",
            missedTicks: .skip,
            timeout: .seconds(30),
            onFailure: .keepSchedule,
            clock: clock.loopClock,
            metrics: metrics
        ) { _ in
            switch attempts.increment() {
            case 1: try await clock.sleep(for: .seconds(12))  // slots 5 and 10 pass: 10 runs, 5 is missed
            case 2: try await clock.sleep(for: .seconds(60))  // times out
            default: break
            }
        }
        loop.onError { _, _ in }
        try loop.start()
        await clock.advance(by: .seconds(120))
        let dimensions = [("loop", "overrun")]
        #expect(try metrics.expectCounter("loops_missed_ticks_total", dimensions).totalValue >= 1)
        #expect(try metrics.expectCounter("loops_timeouts_total", dimensions).totalValue == 1)
        #expect(try metrics.expectCounter("loops_unhandled_errors_total", dimensions).totalValue == 1)
        #expect(try metrics.expectCounter("loops_iterations_total", dimensions).totalValue == 3)
    }

    @Test("the no-op metrics and tracer defaults give a loop no instruments")
    func noInstrumentsByDefault() throws {
        let loop = try Loop(seconds: 1) { _ in }
        #expect(loop.instruments == nil)
    }

    // MARK: spans

    @Test("one span per iteration with name, iteration, scheduled instant and lateness; errors recorded; the body's spans are children")
    func spans() async throws {
        let clock = VirtualClock()
        let tracer = InMemoryTracer()
        let attempts = Counter()
        let start = clock.now
        let loop = try Loop(seconds: 5, count: 2, name: "traced", clock: clock.loopClock, tracer: tracer) { _ in
            let attempt = attempts.increment()
            tracer.withSpan("inner") { _ in }
            if attempt == 1 { throw SomeTransientError() }
        }
        loop.setBackoffJitter { _ in 1 }
        try loop.start()
        await clock.advance(by: .seconds(30))
        let finished = tracer.finishedSpans
        let iterations = finished.filter { $0.operationName == "traced" }
        let inner = finished.filter { $0.operationName == "inner" }
        #expect(iterations.count == 2)
        #expect(inner.count == 3)
        #expect(iterations.map { $0.attributes["loop.iteration"]?.toSpanAttribute() } == [.int64(0), .int64(1)])
        #expect(iterations.map { $0.attributes["loop.name"]?.toSpanAttribute() } == [.string("traced"), .string("traced")])
        #expect(iterations[0].attributes["loop.scheduled_at"]?.toSpanAttribute() == .string(start.iso8601Milliseconds))
        #expect(iterations[1].attributes["loop.scheduled_at"]?.toSpanAttribute() == .string(start.addingTimeInterval(5).iso8601Milliseconds))
        #expect(iterations[0].attributes["loop.lateness_ms"]?.toSpanAttribute() == .double(0))
        // The retried error is recorded on the first iteration's span.
        #expect(iterations[0].errors.count == 1)
        #expect(iterations[0].errors.first?.error is SomeTransientError)
        #expect(iterations[1].errors.isEmpty)
        // Each inner span's parent is an iteration span.
        let iterationIDs = Set(iterations.map(\.spanID))
        #expect(inner.allSatisfy { $0.parentSpanID.map(iterationIDs.contains) == true })
        #expect(Set(inner.map(\.traceID)).count == 2)
    }

    @Test("an unhandled error ends its iteration's span with an error status")
    func spanOfFailedIteration() async throws {
        let clock = VirtualClock()
        let tracer = InMemoryTracer()
        let loop = try Loop(seconds: 5, name: "failing", clock: clock.loopClock, tracer: tracer) { _ in
            throw UnhandledTestError()
        }
        loop.onError { _, _ in }
        try loop.start()
        await clock.advance(by: .seconds(1))
        let spans = tracer.finishedSpans.filter { $0.operationName == "failing" }
        #expect(spans.count == 1)
        #expect(spans.first?.status?.code == .error)
        #expect(spans.first?.errors.first?.error is UnhandledTestError)
        #expect(tracer.activeSpans.isEmpty)
    }
}

extension Date {
    /// The format of ``Loop``'s `loop.scheduled_at`: ISO 8601 UTC with milliseconds.
    fileprivate var iso8601Milliseconds: String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: self)
    }
}
