import Foundation
import Logging
import Loops
import LoopsSystemd
import LoopsTestKit
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Collects what a logger was given.
final class WatchdogLog: Sendable {
    struct Entry: Sendable {
        let level: Logger.Level
        let message: String
        let metadata: [String: String]
    }

    private let storage = Mutex<[Entry]>([])

    var entries: [Entry] { storage.withLock { $0 } }

    func logger() -> Logger {
        var logger = Logger(label: "test") { _ in Handler(log: self) }
        logger.logLevel = .trace
        return logger
    }

    /// Entries at `.debug` and above (the loops' own `.trace` lines left out).
    var lines: [Entry] { entries.filter { $0.level > .trace } }

    struct Handler: LogHandler {
        let log: WatchdogLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var merged = metadata
            for (key, value) in event.metadata ?? [:] { merged[key] = value }
            log.storage.withLock {
                $0.append(Entry(level: event.level, message: event.message.description, metadata: merged.mapValues { "\($0)" }))
            }
        }
    }
}

/// Sets NOTIFY_SOCKET for the duration of `body` (the keep-alives read it at each ping) and
/// restores it.
private func withNotifySocket<T>(_ path: String, _ body: () async throws -> T) async rethrows -> T {
    let saved = getenv("NOTIFY_SOCKET").map { String(cString: $0) }
    setenv("NOTIFY_SOCKET", path, 1)
    defer {
        if let saved { setenv("NOTIFY_SOCKET", saved, 1) } else { unsetenv("NOTIFY_SOCKET") }
    }
    return try await body()
}

/// The watchdog that feeds systemd only while the guarded loops are healthy
/// (`watchdogLoop(guarding:clock:logger:)`), against a real AF_UNIX datagram socket. Part of the
/// serialized `SystemdNotifier` suite: the tests change NOTIFY_SOCKET and WATCHDOG_USEC.
extension SystemdNotifierTests {
    /// Virtual time, so every instant is exact: WATCHDOG_USEC = 10 s (a keep-alive every 5 s), a
    /// worker every second whose iteration at 10 s works for 62 s, a stall timeout of 20 s. The
    /// worker is stalled from 30 s (exclusive) to 72 s: the keep-alives at 0…30 s are sent, those
    /// at 35…70 s are not, those from 75 s on are; one `.critical` line names the worker, one
    /// `.debug` line says the keep-alives resume.
    @Test func guardedWatchdogStopsWhileALoopStallsAndResumesAfter() async throws {
        let socket = try NotifySocket()
        defer { socket.cleanUp() }
        let clock = VirtualClock()
        let log = WatchdogLog()
        // The worker logs elsewhere (a late iteration logs at .debug): `log` holds the watchdog's lines.
        let worker = try Loop(seconds: 1, name: "worker", clock: clock.loopClock, logger: WatchdogLog().logger()) { loop in
            if loop.currentLoop == 10 { try await clock.sleep(for: .seconds(62)) }
        }
        let made = try withEnvironment(["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "10000000", "WATCHDOG_PID": nil]) {
            try SystemdNotifier().watchdogLoop(
                guarding: [GuardedLoop(worker, stallTimeout: .seconds(20))],
                clock: clock.suspendingLoopClock,
                logger: log.logger()
            )
        }
        let watchdog = try #require(made)
        #expect(watchdog.schedule == .every(.seconds(5)))
        #expect(watchdog.name == "systemd-watchdog")

        try await withNotifySocket(socket.path) {
            try worker.start()
            try watchdog.start()
            // Keep-alives at 0, 5, …, 30 s: 7.
            await clock.advance(by: .seconds(30))
            let healthy = await socket.receive(until: .now + .milliseconds(200)) { $0.count >= 8 }
            #expect(healthy.map(\.message) == Array(repeating: "WATCHDOG=1", count: 7))
            #expect(log.lines.isEmpty, "\(log.lines.map(\.message))")

            // 35 … 70 s: the worker's iteration has run for more than 20 s.
            await clock.advance(by: .seconds(40))
            let stalled = await socket.receive(until: .now + .milliseconds(200))
            #expect(stalled.isEmpty, "keep-alives while the worker stalls: \(stalled.map(\.message))")
            #expect(worker.health(stallTimeout: .seconds(20)) == .stalled(.runningBody, for: .seconds(60)))
            let critical = log.lines.filter { $0.level == .critical }
            try #require(critical.count == 1, "\(log.lines.map(\.message))")
            #expect(critical[0].metadata["loop.name"] == "worker")
            #expect(critical[0].metadata["loop.health"] == "stalled in runningBody for 25.0 s")
            #expect(critical[0].message.contains("loop 'worker' is unhealthy (stalled in runningBody for 25.0 s)"))
            #expect(log.lines.count == 1, "\(log.lines.map(\.message))")

            // The iteration ends at 72 s: keep-alives at 75 and 80 s.
            await clock.advance(by: .seconds(10))
            let resumed = await socket.receive(until: .now + .milliseconds(200)) { $0.count >= 3 }
            #expect(resumed.map(\.message) == ["WATCHDOG=1", "WATCHDOG=1"])
            #expect(log.lines.map(\.level) == [.critical, .debug])
            #expect(log.lines.last?.message.contains("keep-alives resume") == true)

            watchdog.cancel()
            worker.cancel()
            await clock.settle()
        }
        await watchdog.task?.value
        await worker.task?.value
    }

    /// A guarded loop that ends by an unhandled error stops the keep-alives (one `.critical`
    /// line with the error) until it runs again; one that ends by `count` does not.
    @Test func guardedWatchdogStopsForALoopEndedByAnError() async throws {
        struct Broken: Error, CustomStringConvertible {
            var description: String { "disk on fire" }
        }
        let socket = try NotifySocket()
        defer { socket.cleanUp() }
        let clock = VirtualClock()
        let log = WatchdogLog()
        let failing = LockedValue(true)
        let worker = try Loop(seconds: 1, name: "importer", clock: clock.loopClock, logger: WatchdogLog().logger()) { loop in
            if loop.currentLoop == 3, failing.withLock({ $0 }) { throw Broken() }
        }
        worker.onError { _, _ in }
        let finite = try Loop(seconds: 1, count: 2, name: "once", clock: clock.loopClock, logger: WatchdogLog().logger()) { _ in }
        let made = try withEnvironment(["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": nil]) {
            try SystemdNotifier().watchdogLoop(
                guarding: [GuardedLoop(worker), GuardedLoop(finite)],
                clock: clock.suspendingLoopClock,
                logger: log.logger()
            )
        }
        let watchdog = try #require(made)
        try await withNotifySocket(socket.path) {
            try worker.start()
            try finite.start()
            try watchdog.start()
            // Keep-alives at 0 and 2 s; the worker fails at 3 s; none at 4, 6, 8 s.
            await clock.advance(by: .seconds(8))
            let pings = await socket.receive(until: .now + .milliseconds(200)) { $0.count >= 3 }
            #expect(pings.count == 2, "\(pings.map(\.message))")
            #expect(worker.health() == .failed("disk on fire"))
            let critical = log.lines.filter { $0.level == .critical }
            #expect(critical.count == 1)
            #expect(critical.first?.metadata["loop.name"] == "importer")
            #expect(critical.first?.metadata["loop.health"] == "ended by an unhandled error: disk on fire")

            // Restarted and healthy: the keep-alive at 10 s is sent.
            failing.withLock { $0 = false }
            try worker.start()
            await clock.advance(by: .seconds(2))
            let resumed = await socket.receive(until: .now + .milliseconds(200)) { $0.count >= 2 }
            #expect(resumed.map(\.message) == ["WATCHDOG=1"])
            #expect(log.lines.map(\.level) == [.critical, .debug])

            watchdog.cancel()
            worker.cancel()
            await clock.settle()
        }
        await watchdog.task?.value
        await worker.task?.value
    }

    /// Real timers and a real socket: WATCHDOG_USEC = 600 ms (a keep-alive every 300 ms), a
    /// worker every 50 ms guarded with a stall timeout of 150 ms. Before the stall the gaps stay
    /// well inside systemd's 600 ms; once the worker has been stuck for 150 ms no keep-alive
    /// arrives (one keep-alive period plus slack for a late wake of the receiving thread); after
    /// the worker is released they resume within a period (plus slack).
    @Test func guardedWatchdogOnRealTimers() async throws {
        let socket = try NotifySocket()
        defer { socket.cleanUp() }
        let log = WatchdogLog()
        let stall = LockedValue(false)
        let stallBegan = LockedValue<ContinuousClock.Instant?>(nil)
        let worker = try Loop(seconds: 0.05, name: "poller", logger: WatchdogLog().logger()) { _ in
            guard stall.withLock({ $0 }) else { return }
            stallBegan.withLock { $0 = $0 ?? .now }
            while stall.withLock({ $0 }) {
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        let made = try withEnvironment(["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "600000", "WATCHDOG_PID": nil]) {
            try SystemdNotifier().watchdogLoop(
                guarding: [GuardedLoop(worker, stallTimeout: .milliseconds(150))],
                logger: log.logger()
            )
        }
        let watchdog = try #require(made)
        let period = Duration.milliseconds(300)
        let slack = Duration.milliseconds(250)

        let (pings, released) = try await withNotifySocket(socket.path) { () async throws -> ([(message: String, at: ContinuousClock.Instant)], ContinuousClock.Instant) in
            let started = ContinuousClock.now
            async let received = socket.receive(until: started + .milliseconds(4000))
            try worker.start()
            try watchdog.start()
            try await Task.sleep(until: started + .milliseconds(1200))
            stall.withLock { $0 = true }
            try await Task.sleep(until: started + .milliseconds(2700))
            stall.withLock { $0 = false }
            let released = ContinuousClock.now
            let pings = await received
            watchdog.cancel()
            worker.cancel()
            await watchdog.task?.value
            await worker.task?.value
            return (pings, released)
        }

        #expect(pings.allSatisfy { $0.message == "WATCHDOG=1" })
        let began = try #require(stallBegan.withLock { $0 }, "the worker never stalled")
        // The worker counts as stalled from at most 150 ms after `began` (its body began a little
        // earlier): after that, no keep-alive.
        let unhealthy = began + .milliseconds(150)
        let before = pings.filter { $0.at < unhealthy }
        let during = pings.filter { $0.at > unhealthy + period + slack && $0.at < released }
        let after = pings.filter { $0.at >= released }
        let arrivals = pings.map { $0.at - began }
        #expect(before.count >= 3, "keep-alives before the stall: \(arrivals)")
        let gaps = zip(before.dropFirst(), before).map { $0.at - $1.at }
        #expect((gaps.max() ?? .zero) < .milliseconds(600), "gaps before the stall \(gaps): systemd's deadline is 600 ms")
        #expect(during.isEmpty, "keep-alives while stalled (relative to the stall): \(arrivals)")
        // Pings stop: none at all between the stall's detection (+ a period) and the release.
        let lastBefore = pings.last { $0.at < released }
        #expect(lastBefore.map { $0.at < unhealthy + period + slack } ?? true, "\(arrivals)")
        // …and resume after the release, within one period plus slack.
        let firstAfter = try #require(after.first, "no keep-alive after the release: \(arrivals)")
        #expect(firstAfter.at - released < period + slack + .milliseconds(200), "\(arrivals)")
        #expect(after.count >= 2, "\(arrivals)")

        let critical = log.lines.filter { $0.level == .critical }
        #expect(critical.count == 1, "\(log.lines.map(\.message))")
        #expect(critical.first?.metadata["loop.name"] == "poller")
        #expect(critical.first?.metadata["loop.health"]?.hasPrefix("stalled in runningBody for ") == true)
        #expect(log.lines.filter { $0.level == .debug && $0.message.contains("resume") }.count == 1)
    }

    @Test func aGuardedLoopReadsItsLimits() throws {
        let loop = try Loop(seconds: 1, name: "limits") { _ in }
        let guarded = GuardedLoop(loop, stallTimeout: .seconds(5), overdueTolerance: .seconds(2))
        #expect(guarded.loop === loop)
        #expect(guarded.stallTimeout == .seconds(5))
        #expect(guarded.overdueTolerance == .seconds(2))
        #expect(guarded.health == .healthy)
        let defaults = GuardedLoop(loop)
        #expect(defaults.stallTimeout == nil && defaults.overdueTolerance == .seconds(30))
    }

    @Test func withoutAWatchdogThereIsNoGuardedLoop() throws {
        let loop = try Loop(seconds: 1) { _ in }
        try withEnvironment(["NOTIFY_SOCKET": nil, "WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]) { () throws in
            #expect(try SystemdNotifier().watchdogLoop(guarding: [GuardedLoop(loop)]) == nil)
        }
    }
}
