import Foundation
import Loops
import LoopsSystemd
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The suite changes the process environment (NOTIFY_SOCKET, WATCHDOG_USEC), so its tests run
/// one at a time and restore it afterwards.
@Suite("SystemdNotifier", .serialized)
struct SystemdNotifierTests {
    private let unsupervised: [String: String?] = ["NOTIFY_SOCKET": nil, "WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]

    @Test func notificationsReachTheSocket() async throws {
        let socket = try NotifySocket()
        defer { socket.cleanUp() }
        let notifier = SystemdNotifier()
        try withEnvironment(["NOTIFY_SOCKET": socket.path]) { () throws in
            #expect(notifier.isAvailable)
            #expect(try notifier.ready())
            #expect(try notifier.status("3 jobs\nqueued"))
            #expect(try notifier.watchdog())
            #expect(try notifier.reloading())
            #expect(try notifier.ready(status: "reloaded"))
            #expect(try notifier.stopping())
        }
        let messages = await socket.receive(until: .now + .seconds(2)) { $0.count >= 6 }.map(\.message)
        try #require(messages.count == 6)
        #expect(messages[0] == "READY=1")
        #expect(messages[1] == "STATUS=3 jobs queued")
        #expect(messages[2] == "WATCHDOG=1")
        let reloading = messages[3].split(separator: "\n")
        #expect(reloading.first == "RELOADING=1")
        #expect(reloading.count == 2 && reloading[1].hasPrefix("MONOTONIC_USEC=") && UInt64(reloading[1].dropFirst(15)) != nil)
        #expect(messages[4] == "READY=1\nSTATUS=reloaded")
        #expect(messages[5] == "STOPPING=1")
    }

    @Test func withoutNotifySocketNothingIsSent() throws {
        let notifier = SystemdNotifier()
        try withEnvironment(unsupervised) { () throws in
            #expect(!notifier.isAvailable)
            #expect(try notifier.ready() == false)
            #expect(try notifier.watchdog() == false)
            #expect(try notifier.watchdogInterval == nil)
            #expect(try notifier.watchdogLoop() == nil)
        }
    }

    @Test func aMissingSocketIsAThrownError() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loops-absent-\(UUID().uuidString)")
        try withEnvironment(["NOTIFY_SOCKET": directory.appendingPathComponent("notify").path]) { () throws in
            #expect {
                try SystemdNotifier().ready()
            } throws: { error in
                guard let error = error as? SystemdError else { return false }
                return error.function == "sd_notify" && error.argument == "READY=1" && error.errno == ENOENT
                    && error.description.contains("sd_notify(READY=1) failed")
            }
        }
    }

    @Test func watchdogIntervalComesFromTheEnvironment() throws {
        let notifier = SystemdNotifier()
        try withEnvironment(["WATCHDOG_USEC": "1500000", "WATCHDOG_PID": nil]) { () throws in
            #expect(try notifier.watchdogInterval == .milliseconds(1500))
        }
        try withEnvironment(["WATCHDOG_USEC": "1500000", "WATCHDOG_PID": String(getpid())]) { () throws in
            #expect(try notifier.watchdogInterval == .milliseconds(1500))
        }
        // The watchdog of another process is not ours.
        try withEnvironment(["WATCHDOG_USEC": "1500000", "WATCHDOG_PID": String(getpid() + 1)]) { () throws in
            #expect(try notifier.watchdogInterval == nil)
        }
        try withEnvironment(["WATCHDOG_USEC": "soon", "WATCHDOG_PID": nil]) { () throws in
            #expect {
                _ = try notifier.watchdogInterval
            } throws: { error in
                (error as? SystemdError)?.argument == "WATCHDOG_USEC=soon"
            }
        }
    }

    /// WATCHDOG_USEC = 400 ms: keep-alives every ~200 ms, never a gap within 25 ms of the deadline.
    /// (400 rather than 200 ms leaves room for wakes delayed by a loaded machine.)
    @Test func watchdogLoopFeedsTheWatchdogAtHalfTheInterval() async throws {
        let socket = try NotifySocket()
        defer { socket.cleanUp() }
        let loop = try withEnvironment(["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": nil]) {
            try SystemdNotifier().watchdogLoop()
        }
        let watchdog = try #require(loop)
        #expect(watchdog.schedule == .every(.milliseconds(500)))
        // The body reads NOTIFY_SOCKET at each ping, so it stays set while the loop runs.
        let saved = getenv("NOTIFY_SOCKET").map { String(cString: $0) }
        setenv("NOTIFY_SOCKET", socket.path, 1)
        defer {
            if let saved { setenv("NOTIFY_SOCKET", saved, 1) } else { unsetenv("NOTIFY_SOCKET") }
        }
        let started = ContinuousClock.now
        try watchdog.start()
        let pings = await socket.receive(until: started + .milliseconds(2600))
        watchdog.cancel()
        await watchdog.task?.value

        #expect(pings.allSatisfy { $0.message == "WATCHDOG=1" }, "\(pings.map { ($0.message, $0.at - started) })")
        // Ideal: 6 pings (0, 500, …, 2500 ms); fewer means starving, more means spamming.
        #expect((4...7).contains(pings.count), "\(pings.count) pings in 2.6 s")
        let first = try #require(pings.first)
        #expect(first.at - started < .milliseconds(100), "the first ping is sent at start")
        let gaps = zip(pings.dropFirst(), pings).map { $0.at - $1.at }
        let longest = gaps.max() ?? .zero
        // Up to 450 ms late still meets systemd's deadline: this machine's loaded VMs have shown
        // single wakes 430 ms late.
        #expect(longest < .milliseconds(950), "longest gap \(longest): systemd's deadline is 1 s; arrivals \(pings.map { $0.at - started })")
    }
}
