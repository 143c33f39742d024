public import Loops
public import ServiceLifecycle
import Synchronization

/// `Loop` runs as a ServiceLifecycle `Service`: add loops to a `ServiceGroup` next to the rest
/// of a daemon.
///
/// ```swift
/// let refresh = try Loop(minutes: 5) { _ in try await cache.refresh() }
/// let group = ServiceGroup(services: [server, refresh], logger: logger)
/// try await group.run()
/// ```
///
/// The group's graceful shutdown (SIGTERM by default) becomes ``Loops/Loop/stop()``: the
/// iteration in progress finishes, `afterLoop` runs, and the service returns. Cancelling the
/// group becomes ``Loops/Loop/cancel()``. A body error that the loop does not handle is thrown
/// to the group, which then follows its failure-termination behaviour.
extension Loop: Service {
    /// The `Service` requirement `run()`: ``Loops/Loop/run()`` with the caller's graceful
    /// shutdown mapped to ``Loops/Loop/stop()`` (through `withGracefulShutdownHandler`).
    ///
    /// It returns when the loop ends by `stop()`, graceful shutdown or `count`; throws
    /// `CancellationError` when the calling task is cancelled; rethrows an unhandled body error.
    /// Outside a `ServiceGroup` it behaves exactly like `run()`.
    ///
    /// A direct `loop.run()` still calls the `Loops` method (this one is the protocol's witness
    /// under another name, so the two never shadow each other).
    @_implements(Service, run())
    @_disfavoredOverload
    public func runAsService() async throws {
        let shutdown = ShutdownRelay(loop: self)
        defer { shutdown.runEnded() }
        try await withGracefulShutdownHandler {
            try await self.run()
        } onGracefulShutdown: {
            shutdown.shutDown()
        }
    }
}

/// Delivers a graceful shutdown to a loop's run as `stop()`, including when it arrives before
/// `run()` has admitted the run: `stop()` on a loop that is not yet running does nothing, so the
/// relay repeats it until the run is active or over. That window is a few microseconds, and
/// nothing polls unless a shutdown lands in it.
private final class ShutdownRelay: Sendable {
    private let loop: Loop
    private let ended = Atomic<Bool>(false)

    init(loop: Loop) {
        self.loop = loop
    }

    func runEnded() {
        ended.store(true, ordering: .releasing)
    }

    func shutDown() {
        loop.stop()
        if loop.isRunning { return }
        Task { [loop, self] in
            while !ended.load(ordering: .acquiring) {
                loop.stop()
                if loop.isRunning { return }
                try? await Task.sleep(for: .milliseconds(1))
            }
        }
    }
}
