import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The engine on the kernel's clocks: one timerfd per clock, however many sleepers there are.
///
/// Each clock gets a ``ClockTimer`` (deadline heap + timerfd armed at the earliest deadline)
/// the first time something sleeps on it. How the engine waits for the timerfds is its
/// ``WaitPath``: by default one thread of the engine blocks in `epoll_wait` over them and an
/// eventfd, sd_event-style, and resumes the sleepers whose deadlines passed — one hop from the
/// kernel to the thread, one to the body's executor (2.0 voluntary context switches per tick,
/// see Documentation/Performance.md). Opt-in, a `DispatchSourceRead` per timerfd on the
/// engine's serial queue does the same through Dispatch (about 4 switches per tick). Bodies run
/// on whatever executor their task uses either way; the waiting thread or queue only does the
/// bookkeeping of a wake.
///
/// The realtime clock's reader also watches the localtime link (``ZoneWatcher``): a change of
/// the system's time zone wakes every realtime sleeper with `.clockStepped`, as a step of the
/// wall clock does, so that schedules in the local zone recompute their next instant.
///
/// ``shared`` serves every loop of the process. Separate instances exist for tests; one
/// releases its descriptors and sources when it is deinitialised.
package final class SystemEngine: LoopEngine {
    /// The engine of the process.
    package static let shared = SystemEngine()

    /// How the engine waits for its timerfds.
    package enum WaitPath: Sendable {
        /// A thread of the engine blocks in `epoll_wait` over the timerfds and an eventfd (the
        /// default).
        case epollThread
        /// A `DispatchSourceRead` per timerfd on the engine's serial queue.
        case dispatchSource
    }

    /// A clock's timer and, on the Dispatch path, the source that reads its fd. Only touched
    /// under `readers`' lock; the Sendable timer is what leaves it.
    private struct Reader {
        let timer: ClockTimer
        let source: (any DispatchSourceRead)?
        /// `.realtime` only, and nil when inotify could not watch the link's directory.
        let zoneWatcher: ZoneWatcher?
    }

    private let queue: DispatchQueue
    private let readers = LockedValue<[EngineClock: Reader]>([:])
    private let waitPath: WaitPath
    /// The thread that waits on the epoll path, started with the first timer.
    private let waitingThread = LockedValue<PrecisionThread?>(nil)
    private let minimumWakeSpacing: Int64
    private let localtimePath: String

    /// Creates an engine with no descriptors yet; they are opened on first use per clock.
    ///
    /// - Parameters:
    ///   - minimumWakeSpacing: nanoseconds; see ``ClockTimer/minimumWakeSpacing``.
    ///   - localtimePath: the link whose changes wake realtime sleepers; tests point it at a
    ///     link of their own (and ``SystemTimeZone/source`` at the same path).
    ///   - waitPath: how the timerfds are waited for.
    package init(
        minimumWakeSpacing: Int64 = ClockTimer.defaultWakeSpacing,
        localtimePath: String = SystemTimeZone.defaultLocaltimePath,
        waitPath: WaitPath = .epollThread
    ) {
        self.waitPath = waitPath
        self.queue = DispatchQueue(label: "swift-loops.system-engine")
        self.minimumWakeSpacing = minimumWakeSpacing
        self.localtimePath = localtimePath
    }

    deinit {
        // Dispatch must stop watching an fd before it is closed, so the close happens in the
        // cancel handler, not here. `cancel()` does not block, so holding the lock is harmless.
        readers.withLock { readers in
            for reader in readers.values {
                reader.source?.cancel()
                reader.zoneWatcher?.cancel()
            }
            readers.removeAll()
        }
        // Closes the timerfds of the epoll path with the thread's own descriptors.
        waitingThread.withLock { $0 }?.shutdown()
    }

    /// The current time on `clock`, in nanoseconds.
    package func now(_ clock: EngineClock) -> Int64 {
        TimerCore.now(clock)
    }

    /// Suspends the calling task until `deadline` on `clock`, or until `waker` is woken (see
    /// ``LoopEngine``).
    package func sleep(until deadline: Int64, on clock: EngineClock, waker: Waker?) async throws -> WakeReason {
        try Task.checkCancellation()
        // Skip the timer lookup (and fd creation) for deadlines already reached, e.g. interval 0.
        if deadline <= now(clock) { return .deadlineReached }
        return try await timer(for: clock).sleep(until: deadline, waker: waker)
    }

    // MARK: - Introspection and test hooks

    /// The number of timerfds this engine holds open (at most one per clock).
    package var openTimerDescriptorCount: Int {
        readers.withLock { $0.count }
    }

    /// The timerfd of `clock`, or nil if nothing slept on that clock yet.
    package func timerDescriptor(for clock: EngineClock) -> Int32? {
        readers.withLock { $0[clock]?.timer.descriptor }
    }

    /// The number of tasks suspended on `clock`.
    package func sleeperCount(on clock: EngineClock) -> Int {
        readers.withLock { $0[clock]?.timer }?.sleeperCount ?? 0
    }

    /// The deadline `clock`'s timerfd is armed at, nil when disarmed or not yet created.
    package func armedDeadline(on clock: EngineClock) -> Int64? {
        readers.withLock { $0[clock]?.timer }?.armedDeadline
    }

    /// How many steps of the wall clock the engine has handled (ECANCELED on the realtime fd).
    package var wallClockStepCount: Int {
        readers.withLock { $0[.realtime]?.timer }?.clockStepCount ?? 0
    }

    /// How many changes of the system's time zone the engine has handled.
    package var zoneChangeCount: Int {
        readers.withLock { $0[.realtime]?.timer }?.zoneChangeCount ?? 0
    }

    /// Whether a change of the localtime link wakes realtime sleepers: false before anything
    /// slept on `.realtime`, and when inotify could not watch the link's directory.
    package var isWatchingZone: Bool {
        readers.withLock { $0[.realtime]?.zoneWatcher != nil }
    }

    /// Runs what a change of the localtime link runs (the zone cache is dropped, every realtime
    /// sleeper wakes with `.clockStepped`), without touching any file. Opens the fd if needed.
    package func simulateZoneChange() throws(LoopError) {
        Self.zoneDidChange(try timer(for: .realtime), queue: queue)
    }

    /// Opens the timerfd of `clock` (and starts the waiting thread) if nothing slept on it yet,
    /// and returns it: tests arm faults on it before the first sleep.
    package func openTimerDescriptor(for clock: EngineClock) throws(LoopError) -> Int32 {
        try timer(for: clock).descriptor
    }

    /// The epoll and eventfd descriptors of the waiting thread (epoll path), nil before the
    /// thread started or on the Dispatch path; tests arm faults on them.
    package var waitingThreadDescriptors: (epoll: Int32, eventfd: Int32)? {
        waitingThread.withLock { $0 }.map { ($0.epollDescriptor, $0.wakeDescriptor) }
    }

    /// Whether the epoll path's thread has exited (after a failure of `epoll_wait`).
    package var hasWaitingThreadExited: Bool {
        waitingThread.withLock { $0 }?.hasExited ?? false
    }

    // MARK: - Readers

    /// The timer of `clock`, created with its fd (and, on the Dispatch path, its source) on
    /// first use.
    private func timer(for clock: EngineClock) throws(LoopError) -> ClockTimer {
        try readers.withLock { (readers: inout [EngineClock: Reader]) throws(LoopError) -> ClockTimer in
            if let reader = readers[clock] { return reader.timer }
            let timer: ClockTimer
            var source: (any DispatchSourceRead)?
            switch waitPath {
            case .epollThread:
                timer = try startedWaitingThread().timer(for: clock)
            case .dispatchSource:
                timer = try ClockTimer(clock: clock, minimumWakeSpacing: minimumWakeSpacing)
                let reader = DispatchSource.makeReadSource(fileDescriptor: timer.descriptor, queue: queue)
                // The handlers hold the timer, never the engine, so that a non-shared engine
                // can be deinitialised while its sources still exist.
                reader.setEventHandler { timer.handleReadable().resume() }
                reader.setCancelHandler { timer.close() }
                reader.activate()
                source = reader
            }
            // Created with the first realtime sleeper: an engine that only sleeps on elapsed
            // time has no use for it.
            let zoneWatcher = clock == .realtime
                ? ZoneWatcher(localtimePath: localtimePath, queue: queue) { [queue] in
                    Self.zoneDidChange(timer, queue: queue)
                }
                : nil
            readers[clock] = Reader(timer: timer, source: source, zoneWatcher: zoneWatcher)
            return timer
        }
    }

    /// The epoll path's thread, started on first use.
    private func startedWaitingThread() throws(LoopError) -> PrecisionThread {
        try waitingThread.withLock { (thread: inout PrecisionThread?) throws(LoopError) -> PrecisionThread in
            if let thread { return thread }
            let started = try PrecisionThread(name: "swift-loops.engine", minimumWakeSpacing: minimumWakeSpacing)
            thread = started
            return started
        }
    }

    /// How long after a zone change the realtime sleepers are woken a second time.
    private static let zoneChangeRepeatDelay = DispatchTimeInterval.milliseconds(100)

    /// The system's time zone changed (or may have): drop what was resolved and wake the
    /// realtime sleepers so that their loops recompute in the new zone.
    ///
    /// A loop that read the old zone just before the change but went to sleep just after the
    /// wake would keep its old deadline; the second wake a moment later catches it (a
    /// re-evaluation in an unchanged zone only puts a loop back to sleep).
    private static func zoneDidChange(_ timer: ClockTimer, queue: DispatchQueue) {
        SystemTimeZone.invalidate()
        timer.handleZoneChange().resume()
        queue.asyncAfter(deadline: .now() + zoneChangeRepeatDelay) {
            timer.handleZoneChange(isRepeat: true).resume()
        }
    }
}
