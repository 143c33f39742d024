import Foundation
import Loops
import LoopsSystemd
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Bad values of the variables systemd sets (the bad-input matrix of
/// Documentation/Reliability.md). An extension of the serialized suite: these tests change the
/// process environment too.
extension SystemdNotifierTests {
    /// The `SystemdError` that `body` throws; records an issue when it throws nothing or another type.
    private func systemdError(_ body: () throws -> Any?) -> SystemdError? {
        do {
            let value = try body()
            Issue.record("no error; got \(String(describing: value))")
        } catch let error as SystemdError {
            return error
        } catch {
            Issue.record("unexpected error type \(type(of: error)): \(error)")
        }
        return nil
    }

    @Test(arguments: [
        ("relative/notify.sock", EINVAL),
        ("/" + String(repeating: "x", count: 200), ENAMETOOLONG),
        ("@loops-no-such-abstract-socket-\(getpid())", ECONNREFUSED),
    ])
    func aNotifySocketThatIsNoSocketIsAThrownError(socket: String, errno expected: Int32) throws {
        try withEnvironment(["NOTIFY_SOCKET": socket]) { () throws in
            let notifier = SystemdNotifier()
            #expect(notifier.isAvailable)
            let error = try #require(systemdError { try notifier.ready() })
            #expect(error.function == "sd_notify")
            #expect(error.argument == "READY=1")
            #expect(error.errno == expected, "\(error)")
            #expect(error.description.hasPrefix("sd_notify(READY=1) failed: "), "\(error)")
        }
    }

    /// Was an error while `isAvailable` said false: libsystemd rejects an empty path with EINVAL.
    /// An empty NOTIFY_SOCKET (`Environment=NOTIFY_SOCKET=` in a unit) means no service manager.
    @Test func anEmptyNotifySocketIsNoServiceManager() throws {
        try withEnvironment(["NOTIFY_SOCKET": ""]) { () throws in
            let notifier = SystemdNotifier()
            #expect(!notifier.isAvailable)
            #expect(try notifier.ready() == false)
            #expect(try notifier.notify("STATUS=x") == false)
            #expect(try notifier.watchdog() == false)
        }
    }

    @Test(arguments: [
        ("0", EINVAL),
        ("", EINVAL),
        ("-1", ERANGE),
        ("18446744073709551615", EINVAL),  // USEC_INFINITY: "no timeout" is not a watchdog
        ("99999999999999999999", ERANGE),
        ("1.5", EINVAL),
        ("💥", EINVAL),
    ])
    func aWatchdogUsecThatIsNoTimeoutIsAThrownError(value: String, errno expected: Int32) throws {
        try withEnvironment(["WATCHDOG_USEC": value, "WATCHDOG_PID": nil]) { () throws in
            let notifier = SystemdNotifier()
            let error = try #require(systemdError { try notifier.watchdogInterval })
            #expect(error.function == "sd_watchdog_enabled")
            #expect(error.argument == "WATCHDOG_USEC=\(value)")
            #expect(error.errno == expected, "\(error)")
            let fromLoop = try #require(systemdError { try notifier.watchdogLoop() })
            #expect(fromLoop == error)
        }
    }

    @Test func aWatchdogPidThatIsNoPidIsAThrownError() throws {
        for pid in ["abc", "0", "-5"] {
            try withEnvironment(["WATCHDOG_USEC": "1000000", "WATCHDOG_PID": pid]) { () throws in
                let error = try #require(systemdError { try SystemdNotifier().watchdogInterval })
                #expect(error.function == "sd_watchdog_enabled", "\(pid)")
                #expect(error.errno == EINVAL || error.errno == ERANGE, "\(pid): \(error)")
            }
        }
    }

    /// systemd accepts timeouts up to 2^64 − 2 µs; half of that is longer than a loop's longest
    /// interval (292 years), so the keep-alive loop is capped there instead of failing.
    @Test func aHugeWatchdogTimeoutGivesACappedKeepAliveLoop() throws {
        try withEnvironment(["WATCHDOG_USEC": "18446744073709551614", "WATCHDOG_PID": nil]) { () throws in
            let notifier = SystemdNotifier()
            #expect(try notifier.watchdogInterval == .microseconds(UInt64(18_446_744_073_709_551_614)))
            let loop = try #require(try notifier.watchdogLoop())
            #expect(loop.schedule == .every(.seconds(9_223_372_036)))
        }
        // The shortest timeout, 1 µs, is valid: a keep-alive every 500 ns.
        try withEnvironment(["WATCHDOG_USEC": "1", "WATCHDOG_PID": nil]) { () throws in
            let loop = try #require(try SystemdNotifier().watchdogLoop())
            #expect(loop.schedule == .every(.nanoseconds(500)))
        }
    }
}
