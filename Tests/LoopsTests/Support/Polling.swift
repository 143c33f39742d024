/// Polls `condition` every 2 ms until it holds or `timeout` of real time passes; returns
/// whether it held. For what a test cannot await directly: a task that has ended but not yet
/// released what it held, a kernel timer re-armed on the engine's thread.
func waitUntil(timeout: Duration = .seconds(5), _ condition: () -> Bool) async -> Bool {
    let end = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now >= end { return false }
        try? await Task.sleep(for: .milliseconds(2))
    }
    return true
}
