extension LoopClock {
    /// CLOCK_BOOTTIME in precision mode on ``PrecisionEngine/shared``: bodies run on the
    /// engine's thread, woken straight from `epoll_wait` (see ``PrecisionEngine`` for the
    /// hazard: a blocking body delays every other loop of that thread).
    public static var precise: LoopClock { continuous.precise }

    /// This clock in precision mode on ``PrecisionEngine/shared`` (`.suspending.precise`).
    public var precise: LoopClock { precise(on: .shared) }

    /// This clock in precision mode on `engine`, e.g. a dedicated engine for a loop whose body
    /// may block and must not delay the loops of the shared one.
    ///
    /// The interval clock is kept; the engine that wakes the loop becomes `engine`.
    public func precise(on engine: PrecisionEngine) -> LoopClock {
        LoopClock(engine: engine, intervalClock: intervalClock)
    }
}
