import CLoopsCore
import CLoopsFaults
import Foundation
import Testing

@testable import Loops

#if canImport(Glibc)
import Glibc
#endif

extension EngineTests {
@Suite("TimerCore")
struct TimerCoreTests {
    /// A pipe's descriptors: open, but not timerfds, so timer calls on them fail with EINVAL.
    private func withPipe(_ body: (Int32) throws -> Void) rethrows {
        var fds: [Int32] = [-1, -1]
        #expect(pipe(&fds) == 0)
        defer {
            close(fds[0])
            close(fds[1])
        }
        try body(fds[0])
    }

    @Test("errno values are described by name and text")
    func describesErrno() {
        #expect(TimerCore.describe(errno: EINVAL) == "EINVAL (Invalid argument)")
        #expect(TimerCore.describe(errno: ECANCELED) == "ECANCELED (Operation canceled)")
        #expect(TimerCore.describe(errno: 4242) == "errno 4242")
    }

    @Test("arming something that is not a timerfd throws a LoopError naming the call and clock")
    func armOnWrongDescriptor() {
        withPipe { fd in
            let error = #expect(throws: LoopError.self) {
                try TimerCore.arm(fd, .realtime, at: TimerCore.now(.realtime) + 1_000_000_000)
            }
            #expect(error?.code == .systemTimer)
            #expect(error?.message == "timerfd_settime(CLOCK_REALTIME) failed: EINVAL (Invalid argument)")
        }
    }

    @Test("arming and disarming a descriptor that is not open throws EBADF")
    func armOnClosedDescriptor() {
        // -1 is never an open descriptor, unlike a just-closed number a parallel test may reuse.
        let armError = #expect(throws: LoopError.self) { try TimerCore.arm(-1, .continuous, at: 1) }
        #expect(armError?.message == "timerfd_settime(CLOCK_BOOTTIME) failed: EBADF (Bad file descriptor)")
        let disarmError = #expect(throws: LoopError.self) { try TimerCore.disarm(-1, .suspending) }
        #expect(disarmError?.message == "timerfd_settime(CLOCK_MONOTONIC) failed: EBADF (Bad file descriptor)")
        #expect(TimerCore.read(-1, .continuous) == .failed(LoopError(.systemTimer, "read(timerfd CLOCK_BOOTTIME) failed: EBADF (Bad file descriptor)")))
        #expect(TimerCore.close(-1)?.message == "close(timerfd) failed: EBADF (Bad file descriptor)")
    }

    @Test("a fresh timer has nothing to read; one armed in the past has one expiration", arguments: EngineClock.allCases)
    func readsExpirations(clock: EngineClock) throws {
        let fd = try TimerCore.create(clock)
        defer { TimerCore.close(fd) }
        #expect(TimerCore.read(fd, clock) == .notExpired)
        try TimerCore.arm(fd, clock, at: TimerCore.now(clock) - 1_000)
        #expect(TimerCore.read(fd, clock) == .expired(1))
        #expect(TimerCore.read(fd, clock) == .notExpired)
    }

    @Test("a disarmed timer does not expire")
    func disarmStopsTheTimer() async throws {
        let fd = try TimerCore.create(.suspending)
        defer { TimerCore.close(fd) }
        try TimerCore.arm(fd, .suspending, at: TimerCore.now(.suspending) + 5_000_000)
        try TimerCore.disarm(fd, .suspending)
        try await Task.sleep(for: .milliseconds(30))
        #expect(TimerCore.read(fd, .suspending) == .notExpired)
    }

    @Test("an injected ECANCELED reads as a clock step once, then the fd is quiet")
    func injectedClockStep() throws {
        let fd = try TimerCore.create(.realtime)
        defer { TimerCore.close(fd) }
        let fault = try Fault.arm(.read, target: fd, errno: ECANCELED)
        #expect(TimerCore.read(fd, .realtime) == .clockStepped)
        #expect(fault.fired == 1)
        #expect(TimerCore.read(fd, .realtime) == .notExpired)
    }

    @Test("an injected I/O error reads as a failure naming the clock")
    func injectedReadError() throws {
        let fd = try TimerCore.create(.suspending)
        defer { TimerCore.close(fd) }
        _ = try Fault.arm(.read, target: fd, errno: EIO)
        #expect(TimerCore.read(fd, .suspending) == .failed(LoopError(.systemTimer, "read(timerfd CLOCK_MONOTONIC) failed: EIO (Input/output error)")))
    }

    @Test("closing a descriptor drops a fault armed on it that was not consumed")
    func closeDropsInjection() throws {
        let timer = try TimerCore.create(.continuous)
        defer { TimerCore.close(timer) }
        // A number far above what anything else here opens (descriptors are handed out lowest
        // first), so that dup2 cannot replace a descriptor of a test running in parallel.
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let high = Int32(min(Int(limit.rlim_cur) - 7, 5_000))
        try #require(fcntl(high, F_GETFD) == -1)
        try #require(dup2(timer, high) == high)
        let fault = try Fault.arm(.read, target: high, errno: EIO)
        TimerCore.close(high)
        // The same number, opened again: its reads must not report the stale injected error.
        try #require(dup2(timer, high) == high)
        defer { TimerCore.close(high) }
        try TimerCore.arm(timer, .continuous, at: TimerCore.now(.continuous) - 1_000)
        #expect(TimerCore.read(high, .continuous) == .expired(1))
        #expect(fault.fired == 0)
    }

    @Test("a fault touches only its own descriptor, as often as armed; a timer that cannot be expired arms nothing")
    func faultsStayOnTheirDescriptor() throws {
        let faulty = try TimerCore.create(.suspending)
        defer { TimerCore.close(faulty) }
        let healthy = try TimerCore.create(.suspending)
        defer { TimerCore.close(healthy) }
        let fault = try Fault.arm(.read, target: faulty, times: 2, errno: EIO)
        let failed = TimerCore.ReadOutcome.failed(LoopError(.systemTimer, "read(timerfd CLOCK_MONOTONIC) failed: EIO (Input/output error)"))
        #expect(TimerCore.read(healthy, .suspending) == .notExpired)
        #expect(TimerCore.read(faulty, .suspending) == failed)
        #expect(TimerCore.read(faulty, .suspending) == failed)
        // Spent: reads are the kernel's again.
        #expect(TimerCore.read(faulty, .suspending) == .notExpired)
        #expect(fault.fired == 2)
        // Invalid arguments are refused rather than armed.
        #expect(cloops_fault_arm(CLOOPS_FAULT_READ, faulty, 0, 0, EIO) == -1)
        #expect(cloops_fault_arm(CLOOPS_FAULT_READ, faulty, 0, 1, 0) == -1)
        withPipe { fd in
            // Not a timerfd: nothing to expire, and nothing left behind to read.
            #expect(cloops_fault_expire_timer_now(fd) == EINVAL)
            #expect(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0)
            #expect(TimerCore.read(fd, .suspending) == .notExpired)
        }
    }

    @Test("the clocks read sensible values")
    func clocksReadSensibleValues() {
        let wall = Double(TimerCore.now(.realtime)) / 1e9
        #expect(abs(wall - Date().timeIntervalSince1970) < 5)
        for clock in [EngineClock.continuous, .suspending] {
            let first = TimerCore.now(clock)
            let second = TimerCore.now(clock)
            #expect(first > 0)
            #expect(second >= first)
        }
    }
}
}
