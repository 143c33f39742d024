import Loops

/// The implementations compared, as named on the command line and in the tables.
enum Implementation: String, CaseIterable, Codable, Sendable {
    case loop = "loop"
    case loopPrecise = "loop-precise"
    case loopDispatch = "loop-dispatch"
    case loopQueue = "loop-queue"
    case rawTimerfd = "raw-timerfd"
    case asyncFloor = "async-floor"
    case globalFloor = "global-floor"
    case dispatchTimer = "dispatch-timer"
    case taskSleep = "task-sleep"

    /// The name in the Markdown tables.
    var title: String {
        switch self {
        case .loop: "swift-loops Loop (default)"
        case .loopPrecise: "swift-loops Loop (precision mode)"
        case .loopDispatch: "swift-loops Loop (DispatchSourceRead waker)"
        case .loopQueue: "swift-loops Loop (default, bodies on a DispatchQueueExecutor)"
        case .rawTimerfd: "raw timerfd loop (floor)"
        case .asyncFloor: "Swift task woken on a timerfd thread (async floor)"
        case .globalFloor: "Swift task on the global executor, woken by a timerfd thread (default-mode floor)"
        case .dispatchTimer: "DispatchSourceTimer, leeway 0"
        case .taskSleep: "Task.sleep(until:) loop"
        }
    }

    /// The clock a swift-loops implementation's loops use (the default for the others).
    var loopClock: LoopClock {
        switch self {
        case .loopPrecise: .precise
        case .loopDispatch: .continuous.viaDispatchSource
        case .loop, .loopQueue, .rawTimerfd, .asyncFloor, .globalFloor, .dispatchTimer, .taskSleep: .continuous
        }
    }
}

/// One run of the precision scenario: 1 loop, 10 ms period, 1000 measured ticks.
struct PrecisionResult: Codable, Sendable {
    var scenario = "precision"
    var implementation: Implementation
    var run: Int = 0
    var ticks: Int
    var latenessP50Microseconds: Double
    var latenessP99Microseconds: Double
    var latenessMaxMicroseconds: Double
    /// Median lateness of the last 100 ticks minus that of the first 100: ~0 for a timer that
    /// keeps its grid, growing for one that schedules each tick from the previous wake.
    var driftMicroseconds: Double
    var cpuMicrosecondsPerTick: Double
    var voluntarySwitchesPerTick: Double
}

/// The scale scenario: `loops` loops every `periodSeconds`, phases spread over the period, 10
/// periods.
struct ScaleResult: Codable, Sendable {
    var scenario = "scale"
    var implementation: Implementation
    var loops: Int
    var periodSeconds: Double
    var ticksExpected: Int
    var ticksDelivered: Int
    var latenessP50Microseconds: Double
    var latenessP99Microseconds: Double
    var cpuPercentOfOneCore: Double
    var rssPerLoopKilobytes: Double
    /// How far behind its phase the latest `start()` was (our loops only).
    var startLagMaxMilliseconds: Double
}

/// The idle scenario: 1 loop at 2 s for 10 s.
struct IdleResult: Codable, Sendable {
    var scenario = "idle"
    var implementation: Implementation
    var seconds: Double
    var ticks: Int
    /// Voluntary context switches of the whole process per second (each is a thread that
    /// went back to sleep after a wakeup), the measuring thread's own sleep excluded.
    var wakeupsPerSecond: Double
    var wakeupsPerTick: Double
}

/// The engine-cost scenario: user-space instructions per tick under callgrind.
struct CostResult: Codable, Sendable {
    var scenario = "cost"
    var implementation: Implementation
    var shortTicks: Int
    var longTicks: Int
    var instructionsShort: Int
    var instructionsLong: Int
    var instructionsPerTick: Double
}
