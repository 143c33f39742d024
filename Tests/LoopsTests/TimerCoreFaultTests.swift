import CLoopsCore
import Foundation
import Testing

@testable import Loops

#if canImport(Glibc)
import Glibc
#endif

/// Faults in the timer core (issue #9 item 5): each system call of the C core fails as the
/// kernel can make it fail (Tests/CLoopsFaults replaces the calls in this executable only), and
/// a real `Loop` shows what its user sees: a ``LoopError`` naming the call and the errno
/// through `onError` and `afterLoop`, a transparent retry, or a recomputation of the schedule.
/// Never a crash, a hang, or a loop that stops without a word.
///
/// Serialized with the other engine suites: faults on creating calls (timerfd_create, eventfd)
/// have no descriptor to target and would hit any engine created at the same moment.
extension EngineTests {
    @Suite("Faults in the timer core")
    struct TimerCoreFaultTests {
        /// An engine of each kind, private to one test: a fault that shuts an engine down must
        /// not reach the shared ones.
        enum Kind: String, CaseIterable, Sendable, CustomTestStringConvertible {
            /// ``SystemEngine`` waiting in its epoll thread (the default).
            case epollThread
            /// ``SystemEngine`` with a `DispatchSourceRead` per timerfd.
            case dispatchSource
            /// ``PrecisionEngine``.
            case precision

            var testDescription: String { rawValue }
        }

        /// One engine under test and what the tests need to reach its descriptors.
        final class Engine: Sendable {
            let system: SystemEngine?
            let precise: PrecisionEngine?

            init(_ kind: Kind) {
                switch kind {
                case .epollThread:
                    system = SystemEngine(waitPath: .epollThread)
                    precise = nil
                case .dispatchSource:
                    system = SystemEngine(waitPath: .dispatchSource)
                    precise = nil
                case .precision:
                    system = nil
                    precise = PrecisionEngine(name: "faults-\(UInt16.random(in: 0...9_999))")
                }
            }

            deinit { precise?.shutdown() }

            var engine: any LoopEngine { system ?? precise! }

            /// The clock loops of this engine use.
            func clock(_ clock: EngineClock) -> LoopClock {
                LoopClock(engine: engine, intervalClock: clock)
            }

            /// Opens the timerfd of `clock` with one short sleep, and returns it.
            func openTimer(_ clock: EngineClock) async throws -> Int32 {
                _ = try await engine.sleep(until: engine.now(clock) + 1_000_000, on: clock, waker: nil)
                let fd = system?.timerDescriptor(for: clock) ?? precise?.timerDescriptor(for: clock)
                return try #require(fd)
            }

            /// The epoll set and eventfd of the engine's thread.
            func threadDescriptors() async throws -> (epoll: Int32, eventfd: Int32) {
                if let precise {
                    let descriptors = precise.threadDescriptors
                    try #require(descriptors.count == 2)
                    return (descriptors[0], descriptors[1])
                }
                _ = try await openTimer(.continuous)
                return try #require(system?.waitingThreadDescriptors)
            }

            func sleeperCount(on clock: EngineClock) -> Int {
                system?.sleeperCount(on: clock) ?? precise?.sleeperCount(on: clock) ?? 0
            }
        }

        /// What a loop's user sees: ticks, `onError`, `afterLoop`.
        final class Probe: Sendable {
            private let state = LockedValue<(ticks: [ContinuousClock.Instant], errors: [LoopError], others: [String], afterLoops: Int)>(([], [], [], 0))

            var ticks: Int { state.withLock { $0.ticks.count } }
            var tickInstants: [ContinuousClock.Instant] { state.withLock { $0.ticks } }
            var errors: [LoopError] { state.withLock { $0.errors } }
            var otherErrors: [String] { state.withLock { $0.others } }
            var afterLoops: Int { state.withLock { $0.afterLoops } }

            func tick() { state.withLock { $0.ticks.append(.now) } }

            /// A loop whose body counts ticks and whose hooks report to this probe.
            func loop(_ schedule: Schedule, count: Int? = nil, clock: LoopClock) throws -> Loop {
                let loop = try Loop(schedule: schedule, count: count, clock: clock) { [self] _ in tick() }
                loop.onError { [self] _, error in
                    state.withLock { state in
                        if let error = error as? LoopError { state.errors.append(error) } else { state.others.append("\(error)") }
                    }
                }
                loop.afterLoop { [self] _ in state.withLock { $0.afterLoops += 1 } }
                return loop
            }
        }

        /// 30 ms: the ≥ 25 ms of headroom real-timer tests keep on these machines.
        static let tick = Duration.milliseconds(30)
        /// Nothing of this length elapses during a test.
        static let long = Duration.seconds(3_600)

        static func systemTimer(_ message: String) -> LoopError { LoopError(.systemTimer, message) }

        /// Tick n ran no earlier than n intervals after `start` (the grid is anchored at the
        /// `start()` call), and the last one not absurdly late: the schedule was kept.
        static func expectOnGrid(_ instants: [ContinuousClock.Instant], from start: ContinuousClock.Instant) {
            for (index, instant) in instants.enumerated() {
                #expect(instant >= start + tick * index, "tick \(index) at \(instant - start)")
            }
            if let last = instants.last { #expect(last - start < .seconds(2)) }
        }

        // MARK: - timerfd_create

        @Test("timerfd_create fails (EMFILE, ENOMEM): onError gets a LoopError naming it, afterLoop runs, the next run retries and ticks",
              arguments: Kind.allCases, [EMFILE, ENOMEM])
        func timerfdCreateFails(kind: Kind, code: Int32) async throws {
            let engine = Engine(kind)
            let probe = Probe()
            let loop = try probe.loop(.every(Self.tick), count: 2, clock: engine.clock(.continuous))
            let fault = try Fault.arm(.timerfdCreate, target: Fault.clockID(.continuous), errno: code)
            defer { fault.clear() }
            try await loop.start().value
            #expect(fault.fired == 1)
            // The first iteration runs at once; the sleep before the second needs the timer.
            #expect(probe.ticks == 1)
            #expect(probe.errors == [Self.systemTimer("timerfd_create(CLOCK_BOOTTIME) failed: \(TimerCore.describe(errno: code))")])
            #expect(probe.afterLoops == 1)
            #expect(loop.failed)

            // Nothing was cached: the next run creates the timer and keeps its schedule.
            try await loop.start().value
            #expect(probe.ticks == 3)
            #expect(probe.errors.count == 1)
            #expect(probe.afterLoops == 2)
        }

        // MARK: - timerfd_settime

        @Test("timerfd_settime fails when a sleep arms the timer: onError gets a LoopError naming it, the next run ticks",
              arguments: Kind.allCases)
        func timerfdSettimeFails(kind: Kind) async throws {
            let engine = Engine(kind)
            let fd = try await engine.openTimer(.continuous)
            let probe = Probe()
            let loop = try probe.loop(.every(Self.tick), count: 2, clock: engine.clock(.continuous))
            let fault = try Fault.arm(.timerfdSettime, target: fd, errno: EINVAL)
            defer { fault.clear() }
            try await loop.start().value
            #expect(fault.fired == 1)
            #expect(probe.ticks == 1)
            #expect(probe.errors == [Self.systemTimer("timerfd_settime(CLOCK_BOOTTIME) failed: EINVAL (Invalid argument)")])
            #expect(probe.afterLoops == 1)

            try await loop.start().value
            #expect(probe.ticks == 3)
            #expect(probe.errors.count == 1)
        }

        @Test("timerfd_settime fails when the timer is re-armed after a wake: the sleepers left fail with it, the woken one is on time",
              arguments: Kind.allCases)
        func timerfdRearmFails(kind: Kind) async throws {
            let engine = Engine(kind)
            let fd = try await engine.openTimer(.continuous)
            let probe = Probe()
            let later = try probe.loop(.every(Self.long), clock: engine.clock(.continuous))
            // 300 ms: the fault is armed well before `sooner` wakes.
            let sooner = try Loop(seconds: 0.3, count: 2, clock: engine.clock(.continuous)) { _ in }
            let laterTask = try later.start()
            #expect(await waitUntil { engine.sleeperCount(on: .continuous) == 1 })
            // Armed for `sooner` (its first sleep) without a fault; the next call re-arms for
            // `later` once `sooner` woke, and fails.
            let soonerTask = try sooner.start()
            #expect(await waitUntil { engine.sleeperCount(on: .continuous) == 2 })
            let fault = try Fault.arm(.timerfdSettime, target: fd, errno: EINVAL)
            defer { fault.clear() }
            await laterTask.value
            #expect(fault.fired == 1)
            #expect(probe.errors == [Self.systemTimer("timerfd_settime(CLOCK_BOOTTIME) failed: EINVAL (Invalid argument)")])
            #expect(probe.afterLoops == 1)
            // `sooner` woke, and its next sleep armed the timer again.
            await soonerTask.value
            #expect(!sooner.failed)
        }

        @Test("timerfd_settime fails when a cancelled sleeper leaves: nobody sees it, the timer fires early and re-arms")
        func timerfdRearmOnCancelFails() async throws {
            let engine = SystemEngine()
            let fd = try engine.openTimerDescriptor(for: .continuous)
            let base = engine.now(.continuous)
            let far = base + 60_000_000_000
            let remaining = Task { try await engine.sleep(until: far, on: .continuous, waker: nil) }
            #expect(await waitUntil { engine.sleeperCount(on: .continuous) == 1 })
            // 300 ms: cancelled well before it wakes.
            let cancelled = Task { try await engine.sleep(until: base + 300_000_000, on: .continuous, waker: nil) }
            #expect(await waitUntil { engine.armedDeadline(on: .continuous).map { $0 < far } ?? false })
            let fault = try Fault.arm(.timerfdSettime, target: fd, errno: EINVAL)
            defer { fault.clear() }
            cancelled.cancel()
            await #expect(throws: CancellationError.self) { try await cancelled.value }
            #expect(fault.fired == 1)
            // The fd still fires at the cancelled deadline; that wake re-arms for the sleeper left.
            #expect(await waitUntil { engine.armedDeadline(on: .continuous).map { $0 >= far } ?? false })
            #expect(engine.sleeperCount(on: .continuous) == 1)
            remaining.cancel()
            _ = try? await remaining.value
        }

        // MARK: - read

        @Test("read of the timerfd is interrupted (EINTR): retried, the loop keeps its schedule", arguments: Kind.allCases)
        func readInterrupted(kind: Kind) async throws {
            let engine = Engine(kind)
            let fd = try await engine.openTimer(.continuous)
            let probe = Probe()
            let loop = try probe.loop(.every(Self.tick), count: 4, clock: engine.clock(.continuous))
            let fault = try Fault.arm(.read, target: fd, times: 3, errno: EINTR)
            defer { fault.clear() }
            let start = ContinuousClock.now
            try await loop.start().value
            #expect(fault.fired == 3)
            #expect(probe.ticks == 4)
            #expect(probe.errors.isEmpty && probe.otherErrors.isEmpty)
            Self.expectOnGrid(probe.tickInstants, from: start)
        }

        @Test("read of the wall-clock timerfd reports ECANCELED (the clock was set): the schedule is recomputed, the loop sleeps on",
              arguments: [Kind.epollThread, .dispatchSource])
        func readCanceled(kind: Kind) async throws {
            let engine = try #require(Engine(kind).system)
            let probe = Probe()
            // The top of every hour: not within this test.
            let loop = try probe.loop(try .calendar("*-*-* *:00:00 UTC"), clock: LoopClock(engine: engine, intervalClock: .continuous))
            let task = try loop.start()
            #expect(await waitUntil { engine.sleeperCount(on: .realtime) == 1 && loop.nextIteration != nil })
            let scheduled = loop.nextIteration
            let fd = try #require(engine.timerDescriptor(for: .realtime))
            let fault = try Fault.arm(.read, target: fd, errno: ECANCELED)
            defer { fault.clear() }
            try Fault.expireTimerNow(fd)
            #expect(await waitUntil { engine.wallClockStepCount == 1 })
            #expect(fault.fired == 1)
            // Woken with .clockStepped, recomputed, nothing due: asleep again on the same slot.
            #expect(await waitUntil { engine.sleeperCount(on: .realtime) == 1 })
            #expect(loop.nextIteration == scheduled)
            #expect(engine.armedDeadline(on: .realtime) != nil)
            #expect(probe.ticks == 0 && probe.errors.isEmpty && probe.afterLoops == 0)
            #expect(loop.isRunning)
            loop.cancel()
            await task.value
        }

        @Test("read of the timerfd fails (EIO): onError gets a LoopError naming the clock, the clock keeps working",
              arguments: Kind.allCases)
        func readFails(kind: Kind) async throws {
            let engine = Engine(kind)
            let probe = Probe()
            let loop = try probe.loop(.every(Self.long), clock: engine.clock(.suspending))
            let task = try loop.start()
            #expect(await waitUntil { engine.sleeperCount(on: .suspending) == 1 })
            let fd = try #require(engine.system?.timerDescriptor(for: .suspending) ?? engine.precise?.timerDescriptor(for: .suspending))
            let fault = try Fault.arm(.read, target: fd, errno: EIO)
            defer { fault.clear() }
            try Fault.expireTimerNow(fd)
            await task.value
            #expect(fault.fired == 1)
            #expect(probe.ticks == 1)
            #expect(probe.errors == [Self.systemTimer("read(timerfd CLOCK_MONOTONIC) failed: EIO (Input/output error)")])
            #expect(probe.afterLoops == 1)

            // The timer was disarmed and re-armed afresh: another loop on the clock ticks.
            let next = try Loop(seconds: 0.03, count: 2, clock: engine.clock(.suspending)) { _ in }
            try await next.run()
            #expect(!next.failed)
        }

        // MARK: - epoll_wait

        @Test("epoll_wait fails: the engine shuts down, onError gets a LoopError naming it, later runs fail with it too",
              arguments: [Kind.epollThread, .precision])
        func epollWaitFails(kind: Kind) async throws {
            let engine = Engine(kind)
            let (epoll, eventfd) = try await engine.threadDescriptors()
            let probe = Probe()
            let loop = try probe.loop(.every(Self.long), clock: engine.clock(.continuous))
            let task = try loop.start()
            #expect(await waitUntil { engine.sleeperCount(on: .continuous) == 1 })
            let fault = try Fault.arm(.epollWait, target: epoll, errno: EBADF)
            defer { fault.clear() }
            // The thread is blocked in epoll_wait already: wake it so that it calls it again.
            try Fault.wakeThread(eventfd: eventfd)
            await task.value
            #expect(fault.fired == 1)
            let failure = Self.systemTimer("epoll_wait failed: EBADF (Bad file descriptor)")
            #expect(probe.errors == [failure])
            #expect(probe.afterLoops == 1)
            // Not retried (it would fail again, a busy spin): the thread is gone.
            #expect(await waitUntil { engine.system?.hasWaitingThreadExited ?? engine.precise!.hasStopped })
            try await loop.start().value
            #expect(probe.errors == [failure, failure])
            #expect(probe.afterLoops == 2)
        }

        @Test("epoll_wait is interrupted (EINTR): retried, the loop keeps its schedule", arguments: [Kind.epollThread, .precision])
        func epollWaitInterrupted(kind: Kind) async throws {
            let engine = Engine(kind)
            let (epoll, _) = try await engine.threadDescriptors()
            let probe = Probe()
            let loop = try probe.loop(.every(Self.tick), count: 4, clock: engine.clock(.continuous))
            let fault = try Fault.arm(.epollWait, target: epoll, times: 3, errno: EINTR)
            defer { fault.clear() }
            let start = ContinuousClock.now
            try await loop.start().value
            #expect(fault.fired == 3)
            #expect(probe.ticks == 4)
            #expect(probe.errors.isEmpty && probe.otherErrors.isEmpty)
            Self.expectOnGrid(probe.tickInstants, from: start)
        }

        // MARK: - eventfd

        @Test("eventfd fails when the engine's thread starts: onError gets a LoopError naming it, the next run starts the thread",
              arguments: [EMFILE, ENOMEM])
        func eventfdFailsOnSystemEngine(code: Int32) async throws {
            let engine = SystemEngine()
            let probe = Probe()
            let loop = try probe.loop(.every(Self.tick), count: 2, clock: LoopClock(engine: engine, intervalClock: .continuous))
            let fault = try Fault.arm(.eventfd, errno: code)
            defer { fault.clear() }
            try await loop.start().value
            #expect(fault.fired == 1)
            #expect(probe.ticks == 1)
            #expect(probe.errors == [Self.systemTimer("eventfd failed: \(TimerCore.describe(errno: code))")])
            #expect(probe.afterLoops == 1)
            #expect(engine.waitingThreadDescriptors == nil)

            try await loop.start().value
            #expect(probe.ticks == 3)
            #expect(probe.errors.count == 1)
            #expect(engine.waitingThreadDescriptors != nil)
        }

        @Test("eventfd fails when a PrecisionEngine is created: every run of its loops reports a LoopError naming it, none hangs")
        func eventfdFailsOnPrecisionEngine() async throws {
            let fault = try Fault.arm(.eventfd, errno: EMFILE)
            defer { fault.clear() }
            let engine = PrecisionEngine(name: "faults-eventfd")
            defer { engine.shutdown() }
            #expect(fault.fired == 1)
            #expect(engine.hasStopped)
            let probe = Probe()
            let loop = try probe.loop(.every(Self.tick), count: 2, clock: .continuous.precise(on: engine))
            let failure = Self.systemTimer("eventfd failed: EMFILE (Too many open files)")
            try await loop.start().value
            try await loop.start().value
            #expect(probe.ticks == 2)
            #expect(probe.errors == [failure, failure])
            #expect(probe.afterLoops == 2)
        }

        @Test("read of the engine's eventfd fails once: the wake is read again, the loop keeps its schedule", arguments: [Kind.epollThread, .precision])
        func eventfdReadFails(kind: Kind) async throws {
            let engine = Engine(kind)
            let (_, eventfd) = try await engine.threadDescriptors()
            let probe = Probe()
            let loop = try probe.loop(.every(Self.tick), count: 3, clock: engine.clock(.continuous))
            let fault = try Fault.arm(.read, target: eventfd, errno: EIO)
            defer { fault.clear() }
            let task = try loop.start()
            try Fault.wakeThread(eventfd: eventfd)
            await task.value
            #expect(await waitUntil { fault.fired == 1 })
            #expect(probe.ticks == 3)
            #expect(probe.errors.isEmpty && probe.otherErrors.isEmpty)
        }
    }
}
