import Foundation
import Logging
import Loops
import LoopsTestKit
import Testing

/// Collects what a logger was given.
final class CapturedLog: Sendable {
    struct Entry: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
    }

    private let storage = LockedValue<[Entry]>([])

    var entries: [Entry] { storage.withLock { $0 } }

    func append(_ entry: Entry) { storage.withLock { $0.append(entry) } }

    func logger() -> Logger {
        var logger = Logger(label: "test") { _ in CapturingHandler(log: self) }
        logger.logLevel = .trace
        return logger
    }

    struct CapturingHandler: LogHandler {
        let log: CapturedLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            // As a real handler does: the logger's own metadata, then the line's.
            let merged = metadata.merging(event.metadata ?? [:]) { _, line in line }
            log.append(Entry(
                level: event.level,
                message: event.message.description,
                metadata: merged.mapValues { "\($0)" }
            ))
        }
    }
}

@Suite("Logging through the injected Logger")
struct LoopLoggingTests {
    @Test("a loop that dies without an onError logs one .error line naming the error; retries log at .debug")
    func deathIsLoggedAtError() async throws {
        let clock = VirtualClock()
        let captured = CapturedLog()
        let attempts = Counter()
        let loop = try Loop(seconds: 5, clock: clock.loopClock, logger: captured.logger()) { _ in
            if attempts.increment() == 1 { throw SomeTransientError() }
            throw UnhandledTestError()
        }
        loop.setBackoffJitter { _ in 1 }
        try loop.start()
        await clock.advance(by: .seconds(10))
        // Trace lines (each iteration's beginning) are checked elsewhere.
        let entries = captured.entries.filter { $0.level > .trace }
        #expect(entries.map(\.level) == [.debug, .error])
        #expect(entries.last?.message == "loop ended by an unhandled error")
        #expect(entries.last?.metadata["error"] == "UnhandledTestError()")
        // Every line names the loop and the iteration, with its slot.
        for entry in entries {
            #expect(entry.metadata["loop.name"] == loop.name)
            #expect(entry.metadata["loop.iteration"] == "0")
            #expect(entry.metadata["loop.scheduled_at"] != nil)
            #expect(entry.metadata["loop.lateness_ms"] != nil)
        }
        #expect(entries.last?.metadata["loop.duration_ms"] != nil)
        #expect(loop.name.hasPrefix("LoopsTests/LoopLoggingTests.swift:"))
        #expect(loop.failed)
    }

    @Test("with an onError handler, nothing is logged above .debug")
    func customHandlerReplacesTheLog() async throws {
        let clock = VirtualClock()
        let captured = CapturedLog()
        let loop = try Loop(seconds: 5, clock: clock.loopClock, logger: captured.logger()) { _ in
            throw UnhandledTestError()
        }
        let handled = Counter()
        loop.onError { _, _ in handled.increment() }
        try loop.start()
        await clock.advance(by: .seconds(1))
        #expect(handled.current == 1)
        #expect(captured.entries.allSatisfy { $0.level <= .debug })
    }

    @Test("a loop that runs normally logs nothing above .debug")
    func quietWhenHealthy() async throws {
        let clock = VirtualClock()
        let captured = CapturedLog()
        let loop = try Loop(seconds: 1, count: 5, clock: clock.loopClock, logger: captured.logger()) { _ in }
        try loop.start()
        await clock.advance(by: .seconds(10))
        #expect(captured.entries.allSatisfy { $0.level <= .debug })
        #expect(loop.currentLoop == 5)
    }
}
