/// The clock a loop measures intervals on, and the engine that wakes it.
///
/// ``continuous`` (the default) counts time spent in system suspend, like Swift's
/// `ContinuousClock`; ``suspending`` does not, like `SuspendingClock`. Wall-clock schedules
/// always wake on the real-time clock and re-evaluate when it is stepped. LoopsTestKit's
/// `VirtualClock` provides a `LoopClock` on simulated time.
public struct LoopClock: Sendable {
    package let engine: any LoopEngine
    package let intervalClock: EngineClock
    /// The engine's ``LoopEngine/readsKernelClocks``, kept here so that reading the time needs
    /// neither a copy of the engine (a retain and a release) nor a call through its witness.
    package let readsKernelClocks: Bool

    package init(engine: any LoopEngine, intervalClock: EngineClock) {
        self.engine = engine
        self.intervalClock = intervalClock
        self.readsKernelClocks = engine.readsKernelClocks
    }

    /// CLOCK_BOOTTIME: intervals include time the machine spent suspended.
    public static var continuous: LoopClock {
        LoopClock(engine: SystemEngine.shared, intervalClock: .continuous)
    }

    /// CLOCK_MONOTONIC: intervals exclude time the machine spent suspended.
    public static var suspending: LoopClock {
        LoopClock(engine: SystemEngine.shared, intervalClock: .suspending)
    }

    /// This clock with its timerfds read by a `DispatchSourceRead` on a serial queue (one per
    /// process), instead of the engine's thread blocked in `epoll_wait`: for a daemon that wants
    /// no thread of the library's own. Schedules, clocks and the timer registry are the same;
    /// a wake costs about twice the CPU and context switches of the default
    /// (Documentation/Performance.md). Ignored by clocks of other engines (precision mode,
    /// LoopsTestKit's virtual clock), which keep their own.
    public var viaDispatchSource: LoopClock {
        guard engine is SystemEngine else { return self }
        return LoopClock(engine: SystemEngine.sharedDispatch, intervalClock: intervalClock)
    }
}
