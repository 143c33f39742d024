import Foundation
import Loops
import LoopsTestKit
import Testing

@Suite("Errors: retries with back-off, handled types, onError, failed")
struct LoopErrorTests {
    @Test("a handled error is retried after the back-off; retries are not counted; count still reached")
    func countWithFailures() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let attempts = Counter()
        let loop = try Loop(seconds: 10, count: 3, clock: clock.loopClock) { loop in
            let attempt = attempts.increment()
            log.record("body\(loop.currentLoop)")
            if attempt == 2 || attempt == 3 { throw HandledTestError() }
        }
        loop.addErrorType(HandledTestError.self)
        loop.setBackoffJitter { upper in upper }  // always the maximum: 2 s, then 4 s
        loop.afterLoop { loop in log.record("after current=\(loop.currentLoop) failed=\(loop.failed)") }
        try loop.start()
        await clock.advance(by: .seconds(60))
        #expect(log.events == [
            "body0@0",
            "body1@10", "body1@12", "body1@16",  // two failures: 2 s then 4 s of back-off
            "body2@20",  // still on the grid of the first start
            "after current=3 failed=false@20",
        ])
    }

    @Test("the back-off doubles up to 2^10 s, draws uniformly in [0, 2^n], and resets after a success")
    func backoffSequence() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let attempts = Counter()
        let bounds = BoundsLog()
        let loop = try Loop(seconds: 1, clock: clock.loopClock) { _ in
            let attempt = attempts.increment()
            log.record("attempt\(attempt)")
            // attempts 1…12 fail, 13 succeeds, 14 fails again.
            if attempt <= 12 || attempt == 14 { throw SomeTransientError() }
        }
        loop.setBackoffJitter { upper in
            bounds.append(upper)
            return upper / 2
        }
        try loop.start()
        await clock.advance(by: .seconds(10_000))
        loop.cancel()
        await clock.settle()
        // The upper bounds drawn from: 2^1 … 2^10, then capped at 2^10; after the success, 2 again.
        #expect(Array(bounds.values.prefix(13)) == [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1024, 1024, 2])
        // Each retry waits the jittered value (half the bound here).
        let times = log.events.prefix(13).map { Double($0.split(separator: "@")[1])! }
        let waits = zip(times.dropFirst(), times).map { $0 - $1 }
        #expect(waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 512, 512])
    }

    @Test("the back-off resets when 2048 s passed since the previous failure")
    func backoffResetsAfterQuietPeriod() async throws {
        let clock = VirtualClock()
        let attempts = Counter()
        let bounds = BoundsLog()
        let loop = try Loop(seconds: 1, clock: clock.loopClock) { _ in
            let attempt = attempts.increment()
            if attempt == 3 { try await clock.sleep(for: .seconds(3000)) }  // a long attempt, then it fails
            if attempt <= 3 { throw SomeTransientError() }
        }
        loop.setBackoffJitter { upper in
            bounds.append(upper)
            return 0
        }
        try loop.start()
        await clock.advance(by: .seconds(4000))
        loop.cancel()
        await clock.settle()
        #expect(bounds.values == [2, 4, 2])
    }

    @Test("default handled types: POSIXError, URLError and TransientError are retried")
    func defaultHandledTypes() async throws {
        for error in [POSIXError(.ECONNRESET), URLError(.timedOut), SomeTransientError()] as [any Error] {
            let outcome = try await firstTwoAttempts(throwing: error)
            #expect(outcome == .retried, "\(type(of: error)) should be retried")
        }
        let unhandled = try await firstTwoAttempts(throwing: UnhandledTestError())
        #expect(unhandled == .failed)
    }

    @Test("addErrorType / removeErrorType / clearErrorTypes")
    func errorTypeRegistry() async throws {
        let added = try await firstTwoAttempts(throwing: HandledTestError()) { $0.addErrorType(HandledTestError.self) }
        #expect(added == .retried)

        let removals = BoundsLog()
        let removed = try await firstTwoAttempts(throwing: HandledTestError()) { loop in
            loop.addErrorType(HandledTestError.self)
            removals.append(loop.removeErrorType(HandledTestError.self) ? 1 : 0)
            removals.append(loop.removeErrorType(HandledTestError.self) ? 1 : 0)
        }
        #expect(removed == .failed)
        #expect(removals.values == [1, 0])

        let partial = BoundsLog()
        let posixRemoved = try await firstTwoAttempts(throwing: POSIXError(.EPIPE)) { loop in
            partial.append(loop.removeErrorType(POSIXError.self, UnhandledTestError.self) ? 1 : 0)
        }
        #expect(posixRemoved == .failed)  // POSIXError was removed even though not all were found
        #expect(partial.values == [0])

        for error in [POSIXError(.EPIPE), SomeTransientError()] as [any Error] {
            let cleared = try await firstTwoAttempts(throwing: error) { $0.clearErrorTypes() }
            #expect(cleared == .failed)
        }
    }

    @Test("subclasses of a handled class are handled")
    func subclassesMatch() async throws {
        class BaseError: Error, @unchecked Sendable {}
        final class DerivedError: BaseError, @unchecked Sendable {}
        let outcome = try await firstTwoAttempts(throwing: DerivedError()) { $0.addErrorType(BaseError.self) }
        #expect(outcome == .retried)
    }

    @Test("reconnect: false ends the loop on a handled error")
    func reconnectFalse() async throws {
        let outcome = try await firstTwoAttempts(throwing: POSIXError(.ECONNRESET), reconnect: false)
        #expect(outcome == .failed)
    }

    @Test("a CancellationError thrown by the body itself is never retried; it ends the loop through onError")
    func cancellationErrorNotRetried() async throws {
        let outcome = try await firstTwoAttempts(throwing: CancellationError()) { $0.addErrorType(CancellationError.self) }
        #expect(outcome == .failed)
    }

    @Test("an unhandled error: onError with failed already true, then afterLoop, then the run ends")
    func unhandledError() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 5, clock: clock.loopClock) { loop in
            log.record("body\(loop.currentLoop)")
            if loop.currentLoop == 2 { throw UnhandledTestError() }
        }
        loop.onError { loop, error in
            log.record("onError \(error is UnhandledTestError) failed=\(loop.failed) running=\(loop.isRunning)")
        }
        loop.afterLoop { loop in log.record("after failed=\(loop.failed) current=\(loop.currentLoop) cancelled=\(loop.isBeingCancelled)") }
        try loop.start()
        await clock.advance(by: .seconds(30))
        #expect(log.events == [
            "body0@0", "body1@5", "body2@10",
            "onError true failed=true running=true@10",
            "after failed=true current=2 cancelled=false@10",
        ])
        #expect(loop.failed)
        #expect(loop.isRunning == false)
        try loop.start()
        #expect(loop.failed == false)  // reset by the next start
        loop.cancel()
        await clock.settle()
    }

    @Test("an error in beforeLoop ends the run through onError and afterLoop")
    func beforeLoopError() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 5, clock: clock.loopClock) { _ in log.record("body") }
        loop.beforeLoop { _ in throw UnhandledTestError() }
        loop.onError { _, _ in log.record("onError") }
        loop.afterLoop { loop in log.record("after failed=\(loop.failed)") }
        try loop.start()
        await clock.advance(by: .seconds(10))
        #expect(log.events == ["onError@0", "after failed=true@0"])
    }

    @Test("stop() during a retry: the handled error is still retried until success, then the loop exits")
    func stopDuringRetry() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let attempts = Counter()
        let loop = try Loop(seconds: 100, clock: clock.loopClock) { _ in
            let attempt = attempts.increment()
            log.record("attempt\(attempt)")
            if attempt <= 2 { throw SomeTransientError() }
        }
        loop.setBackoffJitter { $0 }
        loop.afterLoop { loop in log.record("after current=\(loop.currentLoop)") }
        try loop.start()
        await clock.advance(by: .seconds(1))
        loop.stop()
        #expect(loop.nextIteration == nil)
        await clock.advance(by: .seconds(10))
        #expect(log.events == ["attempt1@0", "attempt2@2", "attempt3@6", "after current=1@6"])
    }

    enum Outcome: Equatable { case retried, failed }

    /// Starts a loop whose first attempt throws `error`; tells whether a second attempt came
    /// (retried) or the loop ended through onError (failed).
    private func firstTwoAttempts(
        throwing error: any Error,
        reconnect: Bool = true,
        configure: (Loop) -> Void = { _ in }
    ) async throws -> Outcome {
        let clock = VirtualClock()
        let attempts = Counter()
        let errors = Counter()
        let loop = try Loop(seconds: 60, reconnect: reconnect, clock: clock.loopClock) { _ in
            if attempts.increment() == 1 { throw error }
        }
        loop.setBackoffJitter { _ in 0.5 }
        loop.onError { _, _ in errors.increment() }
        configure(loop)
        try loop.start()
        await clock.advance(by: .seconds(5))
        loop.cancel()
        await clock.settle()
        if attempts.current == 2, errors.current == 0 { return .retried }
        if attempts.current == 1, errors.current == 1, loop.failed { return .failed }
        Issue.record("unexpected: \(attempts.current) attempts, \(errors.current) onError calls")
        return .failed
    }
}

/// The upper bounds the back-off asked the jitter for.
final class BoundsLog: Sendable {
    private let storage = LockedValue<[Double]>([])
    func append(_ value: Double) { storage.withLock { $0.append(value) } }
    var values: [Double] { storage.withLock { $0 } }
}
