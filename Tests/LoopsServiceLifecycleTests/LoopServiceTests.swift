import Logging
import Loops
import LoopsServiceLifecycle
import ServiceLifecycle
import ServiceLifecycleTestKit
import Synchronization
import Testing

/// Counts what a loop did, for assertions from outside its tasks.
private final class Trace: Sendable {
    let started = Atomic<Int>(0)
    let finished = Atomic<Int>(0)
    let afterLoops = Atomic<Int>(0)
}

@Suite("Loop as a Service")
struct LoopServiceTests {
    /// A loop whose body takes 100 ms and records its start and end.
    private func slowLoop(_ trace: Trace) throws -> Loop {
        let loop = try Loop(seconds: 0.01) { _ in
            trace.started.add(1, ordering: .relaxed)
            try await Task.sleep(for: .milliseconds(100))
            trace.finished.add(1, ordering: .relaxed)
        }
        loop.afterLoop { _ in trace.afterLoops.add(1, ordering: .relaxed) }
        return loop
    }

    /// Waits (polling) until `condition` holds, up to `limit`.
    private func waitUntil(_ limit: Duration = .seconds(5), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + limit
        while !condition(), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test func gracefulShutdownStopsAfterTheCurrentIteration() async throws {
        let trace = Trace()
        let loop = try slowLoop(trace)
        let service: any Service = loop
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.run() }
                try await waitUntil { trace.started.load(ordering: .relaxed) >= 2 }
                trigger.triggerGracefulShutdown()
                // run() returns normally (no CancellationError) once the body in progress ends.
                try await group.next()
            }
        }
        #expect(trace.started.load(ordering: .relaxed) == trace.finished.load(ordering: .relaxed))
        #expect(trace.started.load(ordering: .relaxed) >= 2)
        #expect(trace.afterLoops.load(ordering: .relaxed) == 1)
        #expect(!loop.isRunning)
        #expect(!loop.failed)
    }

    @Test func shutdownBeforeTheRunStartsEndsItAtOnce() async throws {
        let trace = Trace()
        let loop = try slowLoop(trace)
        let service: any Service = loop
        try await testGracefulShutdown { trigger in
            trigger.triggerGracefulShutdown()
            try await service.run()
        }
        // The shutdown came before the run was admitted: it is admitted stopped, no iteration runs.
        #expect(trace.started.load(ordering: .relaxed) == 0)
        #expect(trace.afterLoops.load(ordering: .relaxed) == 1)
        #expect(!loop.isRunning)
    }

    @Test func directRunIsTheLoopsMethod() async throws {
        // Outside a ServiceGroup both entry points behave alike: `count` ends the run.
        let loop = try Loop(seconds: 0, count: 3) { _ in }
        try await loop.run()
        #expect(loop.currentLoop == 3)
        let service: any Service = loop
        try await service.run()
        #expect(loop.currentLoop == 3)
    }

    @Test func serviceGroupShutdownStopsTheLoop() async throws {
        let trace = Trace()
        let loop = try slowLoop(trace)
        var logger = Logger(label: "loops-service-tests")
        logger.logLevel = .critical
        let group = ServiceGroup(services: [loop], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            try await waitUntil { trace.started.load(ordering: .relaxed) >= 1 }
            await group.triggerGracefulShutdown()
            try await tasks.next()
        }
        #expect(trace.started.load(ordering: .relaxed) == trace.finished.load(ordering: .relaxed))
        #expect(trace.afterLoops.load(ordering: .relaxed) == 1)
    }

    @Test func anUnhandledErrorIsThrownToTheCaller() async throws {
        struct Broken: Error {}
        let loop = try Loop(seconds: 0) { _ in throw Broken() }
        loop.onError { _, _ in }
        let service: any Service = loop
        await #expect(throws: Broken.self) {
            try await testGracefulShutdown { _ in try await service.run() }
        }
        #expect(loop.failed)
    }
}
