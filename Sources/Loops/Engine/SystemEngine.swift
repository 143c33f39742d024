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
/// ``WaitPath``: by default one thread of the engine (`loops-engine`) blocks in `epoll_wait`
/// over them and an eventfd, sd_event-style, and resumes the sleepers whose deadlines passed —
/// one hop from the kernel to the thread, one to the body's executor (2.0 voluntary context
/// switches per tick, see Documentation/Performance.md). Opt-in, a `DispatchSourceRead` per
/// timerfd on the engine's serial queue does the same through Dispatch (about 4 switches per
/// tick). Bodies run on whatever executor their task uses either way; the waiting thread or
/// queue only does the bookkeeping of a wake.
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

    /// The engine of the process for clocks read through Dispatch
    /// (``LoopClock/viaDispatchSource``): created with the first such clock.
    package static let sharedDispatch = SystemEngine(waitPath: .dispatchSource)

    /// How the engine waits for its timerfds.
    package enum WaitPath: Sendable {
        /// A thread of the engine blocks in `epoll_wait` over the timerfds and an eventfd (the
        /// default).
        case epollThread
        /// A `DispatchSourceRead` per timerfd on the engine's serial queue.
        case dispatchSource
    }

    /// What watches a clock's timer besides the registry: on the Dispatch path the source that
    /// reads its fd; for `.realtime` the zone watcher (nil when inotify could not watch the
    /// link's directory).
    private struct Watchers {
        var sources: [EngineClock: any DispatchSourceRead] = [:]
        var zoneWatcher: ZoneWatcher?
    }

    private let queue: DispatchQueue
    private let registry: TimerRegistry
    private let watchers = LockedValue(Watchers())
    /// How the engine waits for its timerfds.
    package let waitPath: WaitPath
    /// The thread that waits on the epoll path, started with the first timer.
    private let waitingThread = LockedValue<PrecisionThread?>(nil)
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
        self.registry = TimerRegistry(minimumWakeSpacing: minimumWakeSpacing)
        self.localtimePath = localtimePath
    }

    deinit {
        // Dispatch must stop watching an fd before it is closed, so the close happens in the
        // cancel handler, not here. `cancel()` does not block, so holding the lock is harmless.
        watchers.withLock { watchers in
            for source in watchers.sources.values { source.cancel() }
            watchers.zoneWatcher?.cancel()
            watchers = Watchers()
        }
        // Closes the timerfds of the epoll path with the thread's own descriptors.
        waitingThread.withLock { $0 }?.shutdown()
    }

    /// The current time on `clock`, in nanoseconds.
    package func now(_ clock: EngineClock) -> Int64 {
        TimerCore.now(clock)
    }

    /// Its clocks are the kernel's.
    package var readsKernelClocks: Bool { true }

    /// Suspends the calling task until `deadline` on `clock`, or until `waker` is woken (see
    /// ``LoopEngine``).
    nonisolated(nonsending) package func sleep(until deadline: Int64, on clock: EngineClock, waker: Waker?) async throws -> WakeReason {
        try await sleepOnRoutedTimer(until: deadline, on: clock, waker: waker)
    }

    /// The clock's timer, or ``SleepRoute/reached`` (see ``LoopEngine``).
    package func route(until deadline: Int64, on clock: EngineClock) throws(LoopError) -> SleepRoute {
        if let route = registry.route(until: deadline, on: clock) { return route }
        return .timer(try registry.timer(for: clock, watch: watch))
    }

    // MARK: - Introspection and test hooks

    /// The number of timerfds this engine holds open (at most one per clock).
    package var openTimerDescriptorCount: Int {
        registry.openDescriptorCount
    }

    /// The timerfd of `clock`, or nil if nothing slept on that clock yet.
    package func timerDescriptor(for clock: EngineClock) -> Int32? {
        registry.descriptor(for: clock)
    }

    /// The number of tasks suspended on `clock`.
    package func sleeperCount(on clock: EngineClock) -> Int {
        registry.sleeperCount(on: clock)
    }

    /// The deadline `clock`'s timerfd is armed at, nil when disarmed or not yet created.
    package func armedDeadline(on clock: EngineClock) -> Int64? {
        registry.armedDeadline(on: clock)
    }

    /// How many steps of the wall clock the engine has handled (ECANCELED on the realtime fd).
    package var wallClockStepCount: Int {
        registry.existingTimer(for: .realtime)?.clockStepCount ?? 0
    }

    /// How many changes of the system's time zone the engine has handled.
    package var zoneChangeCount: Int {
        registry.existingTimer(for: .realtime)?.zoneChangeCount ?? 0
    }

    /// Whether a change of the localtime link wakes realtime sleepers: false before anything
    /// slept on `.realtime`, and when inotify could not watch the link's directory.
    package var isWatchingZone: Bool {
        watchers.withLock { $0.zoneWatcher != nil }
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

    // MARK: - Watching the timers

    /// The timer of `clock`, created with its fd on first use.
    private func timer(for clock: EngineClock) throws(LoopError) -> ClockTimer {
        try registry.timer(for: clock, watch: watch)
    }

    /// Starts reading a new timer's fd (``TimerRegistry``'s `watch`, under its lock): the
    /// waiting thread's epoll set, or a `DispatchSourceRead` of the fd; and, for the realtime
    /// clock, the localtime link.
    private func watch(_ timer: ClockTimer) throws(LoopError) {
        switch waitPath {
        case .epollThread:
            try startedWaitingThread().watch(timer)
        case .dispatchSource:
            let source = DispatchSource.makeReadSource(fileDescriptor: timer.descriptor, queue: queue)
            // The handlers hold the timer, never the engine, so that a non-shared engine
            // can be deinitialised while its sources still exist.
            let buffer = ReaderBuffer()
            source.setEventHandler {
                timer.handleReadable(reusing: &buffer.sleepers)
            }
            source.setCancelHandler { timer.close() }
            source.activate()
            watchers.withLock { $0.sources[timer.clock] = source }
        }
        // Created with the first realtime sleeper: an engine that only sleeps on elapsed
        // time has no use for it.
        if timer.clock == .realtime {
            let zoneWatcher = ZoneWatcher(localtimePath: localtimePath, queue: queue) { [queue] in
                Self.zoneDidChange(timer, queue: queue)
            }
            watchers.withLock { $0.zoneWatcher = zoneWatcher }
        }
    }

    /// The epoll path's thread, started on first use.
    private func startedWaitingThread() throws(LoopError) -> PrecisionThread {
        try waitingThread.withLock { (thread: inout PrecisionThread?) throws(LoopError) -> PrecisionThread in
            if let thread { return thread }
            let started = try PrecisionThread(name: "loops-engine", registry: registry)
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

/// The sleepers a Dispatch reader releases, kept from event to event so that a wake does not
/// allocate. Only its source's event handler touches it, on the engine's serial queue.
private final class ReaderBuffer: @unchecked Sendable {
    var sleepers: [ClockTimer.Sleeper] = []
}
