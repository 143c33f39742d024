import CLoopsCore

/// The process-wide engine on the C timer core.
// PLACEHOLDER: being written (one timerfd per clock, deadline heap, DispatchSourceRead).
package final class SystemEngine: LoopEngine {
    package static let shared = SystemEngine()

    package func now(_ clock: EngineClock) -> Int64 {
        var ns: Int64 = 0
        _ = cloops_clock_now(cloops_clock(UInt32(clock.rawValue)), &ns)
        return ns
    }

    package func sleep(until deadline: Int64, on clock: EngineClock) async throws -> WakeReason {
        let delay = deadline - now(clock)
        if delay > 0 { try await Task.sleep(nanoseconds: UInt64(delay)) }
        try Task.checkCancellation()
        return .deadlineReached
    }

    package func loopDidActivate() {}
    package func loopDidDeactivate() {}
    package func participate(_ operation: () async -> Void) async { await operation() }
}
