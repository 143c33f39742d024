/// The clock a loop measures intervals on, and the engine that wakes it.
///
/// ``continuous`` (the default) counts time spent in system suspend, like Swift's
/// `ContinuousClock`; ``suspending`` does not, like `SuspendingClock`. Wall-clock schedules
/// always wake on the real-time clock and re-evaluate when it is stepped. LoopsTestKit's
/// `VirtualClock` provides a `LoopClock` on simulated time.
public struct LoopClock: Sendable {
    package let engine: any LoopEngine
    package let intervalClock: EngineClock

    package init(engine: any LoopEngine, intervalClock: EngineClock) {
        self.engine = engine
        self.intervalClock = intervalClock
    }

    /// CLOCK_BOOTTIME: intervals include time the machine spent suspended.
    public static var continuous: LoopClock {
        LoopClock(engine: SystemEngine.shared, intervalClock: .continuous)
    }

    /// CLOCK_MONOTONIC: intervals exclude time the machine spent suspended.
    public static var suspending: LoopClock {
        LoopClock(engine: SystemEngine.shared, intervalClock: .suspending)
    }
}
