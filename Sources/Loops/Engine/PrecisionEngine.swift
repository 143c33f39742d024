#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Precision mode: a thread of its own that waits for the timers of its loops in
/// `epoll_wait` and runs their bodies itself, so a body starts on the thread the kernel woke,
/// microseconds after the deadline, with one context switch per tick.
///
/// In the default mode a timer wake is handled on a Dispatch queue and the body then hops to
/// the global executor: two or more thread wakeups per tick. Precision mode removes the hop,
/// which brings a loop's lateness down to that of a raw timerfd loop. Opt in per loop through
/// its clock:
///
/// ```swift
/// let sampler = try Loop(seconds: 0.01, clock: .precise) { _ in sample() }
/// // or: clock: .suspending.precise, or .continuous.precise(on: dedicatedEngine)
/// ```
///
/// - Important: every loop of an engine runs its body on the engine's one thread, one body at
///   a time. A body that blocks (synchronous I/O, a lock, a long computation) delays every
///   other loop of the same engine: measured here, a body blocking 30 ms pushed another loop's
///   p99 lateness from 0.2 ms to 23 ms. Keep bodies short and non-blocking, move heavy work to
///   another task, or give a loop that may block its own engine (`PrecisionEngine()`).
///
/// An engine is also a serial `TaskExecutor`: `withTaskExecutorPreference(engine)` runs other
/// work on its thread. ``shared`` lives as long as the process; an engine you create stops its
/// thread and closes its descriptors when ``shutdown()`` is called or the last reference to
/// it goes away.
public final class PrecisionEngine: TaskExecutor, Sendable {
    /// The engine of ``LoopClock/precise-type.property``; its thread, `loops-precise`, starts the
    /// first time it is used.
    public static let shared = PrecisionEngine(name: "loops-precise")

    /// The thread; nil when it could not be started (the process is out of descriptors or
    /// threads): then every sleep fails with ``startFailure``, reported by the loop. Two
    /// fields rather than a `Result`: the thread is read on every enqueue and sleep, and a
    /// `Result` with a `LoopError` in it is copied out (retains and releases) on each read.
    private let thread: PrecisionThread?
    /// Why the thread could not be started.
    private let startFailure: LoopError?
    /// The thread's timers, also kept here: a sleep reaches them through one stored property
    /// (through the thread's, the registry was retained and released on every sleep).
    private let registry: TimerRegistry

    /// Starts a thread of its own, named `name` as shown by `top -H`, `ps -L` and debuggers:
    /// Linux keeps the first 15 bytes of a thread's name, so a longer one is shown cut there.
    ///
    /// Creating an engine does not throw: if the system refuses the thread or its descriptors,
    /// loops on the engine end with a ``LoopError`` (through `onError`) on their first sleep.
    public init(name: String = "loops-precise") {
        let registry = TimerRegistry()
        self.registry = registry
        do {
            thread = try PrecisionThread(name: name, registry: registry)
            startFailure = nil
        } catch {
            thread = nil
            startFailure = error
        }
        thread?.adopt(executor: asUnownedTaskExecutor())
    }

    deinit {
        thread?.shutdown()
    }

    /// Stops the thread: jobs already queued run, sleepers still waiting fail with a
    /// ``LoopError`` (their loops report it through `onError`), descriptors are closed, and
    /// work that still prefers this executor runs on the global executor from then on. Waits
    /// for the thread to exit unless called on it. Calling it again does nothing.
    ///
    /// Do not shut down ``shared`` while loops use it.
    public func shutdown() {
        thread?.shutdown()
    }

    // MARK: TaskExecutor

    /// Runs `job` on the engine's thread.
    public func enqueue(_ job: consuming ExecutorJob) {
        // Optional chaining borrows the thread (binding it retained and released it per job).
        let job = UnownedJob(job)
        if thread?.enqueue(job) == nil {
            globalConcurrentExecutor.enqueue(ExecutorJob(job))
        }
    }

    // MARK: Introspection for tests

    /// The number of timerfds open (at most one per clock).
    package var openTimerDescriptorCount: Int {
        thread?.registry.openDescriptorCount ?? 0
    }

    /// The timerfd of `clock`, or nil if nothing slept on that clock yet.
    package func timerDescriptor(for clock: EngineClock) -> Int32? {
        thread?.registry.descriptor(for: clock)
    }

    /// The number of tasks suspended on `clock`.
    package func sleeperCount(on clock: EngineClock) -> Int {
        thread?.registry.sleeperCount(on: clock) ?? 0
    }

    /// The epoll and eventfd descriptors of the thread.
    package var threadDescriptors: [Int32] { thread?.ownDescriptors ?? [] }

    /// The engine's thread, nil when it could not be started.
    package var threadHandle: UInt? { thread.map { UInt($0.threadHandle) } }

    /// Whether the thread has exited and closed its descriptors.
    package var hasStopped: Bool { thread?.hasExited ?? true }
}

extension PrecisionEngine: LoopEngine {
    /// The current time on `clock`, in nanoseconds.
    package func now(_ clock: EngineClock) -> Int64 {
        TimerCore.now(clock)
    }

    /// Its clocks are the kernel's.
    package var readsKernelClocks: Bool { true }

    /// Suspends the calling task until `deadline` on `clock` (see ``LoopEngine``); the thread
    /// resumes it when the clock's timerfd fires.
    nonisolated(nonsending) package func sleep(until deadline: Int64, on clock: EngineClock, waker: Waker?) async throws -> WakeReason {
        try await sleepOnRoutedTimer(until: deadline, on: clock, waker: waker)
    }

    /// The clock's timer on the engine's thread, or ``SleepRoute/reached`` (see ``LoopEngine``).
    package func route(until deadline: Int64, on clock: EngineClock) throws(LoopError) -> SleepRoute {
        // Every sleep asks: the common answer without retaining the thread or the registry.
        if thread != nil, let route = registry.route(until: deadline, on: clock) { return route }
        if let thread {
            return .timer(try thread.registry.timer(for: clock, watch: thread.watch))
        }
        // As with a working thread, a deadline already reached needs no timer.
        if deadline <= now(clock) { return .reached }
        throw startFailure ?? LoopError(.systemTimer, "the precision engine's thread did not start")
    }

    /// Loops on this engine run on its thread unless given another executor.
    package var preferredExecutor: (any TaskExecutor)? { self }
}
