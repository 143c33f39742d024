public import Loops
public import ServiceLifecycle


/// `Loop` runs as a ServiceLifecycle `Service`: add loops to a `ServiceGroup` next to the rest
/// of a daemon.
///
/// ```swift
/// let refresh = try Loop(minutes: 5) { _ in try await cache.refresh() }
/// let group = ServiceGroup(services: [server, refresh], logger: logger)
/// try await group.run()
/// ```
///
/// The group's graceful shutdown (SIGTERM by default) becomes ``/Loops/Loop/stop()``: the
/// iteration in progress finishes, `afterLoop` runs, and the service returns. Cancelling the
/// group becomes ``/Loops/Loop/cancel()``. A body error that the loop does not handle is thrown
/// to the group, which then follows its failure-termination behaviour.
extension Loop: Service {
    /// The `Service` requirement `run()`: ``/Loops/Loop/run()`` with the caller's graceful
    /// shutdown mapped to ``/Loops/Loop/stop()`` (through `withGracefulShutdownHandler`).
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
        let shutdown = ShutdownRelay()
        try await withGracefulShutdownHandler {
            try await self.run(stoppedAtAdmission: { shutdown.admit() })
        } onGracefulShutdown: {
            if shutdown.shutDown() { self.stop() }
        }
    }
}

/// Hands a graceful shutdown to a loop's run as `stop()`, also when it arrives before `run()`
/// has admitted the run (where `stop()` would do nothing): the run is then admitted stopped.
/// The loop asks ``admit()`` under its lock while it admits the run, so either the shutdown is
/// seen there, or it comes after the admission and `stop()` reaches the run.
private final class ShutdownRelay: Sendable {
    private enum State {
        case waiting
        case admitted
        case shutDownBeforeAdmission
    }

    private let state = LockedValue(State.waiting)

    /// The run is being admitted: whether it must be admitted stopped.
    func admit() -> Bool {
        state.withLock { state in
            if case .shutDownBeforeAdmission = state { return true }
            state = .admitted
            return false
        }
    }

    /// A graceful shutdown arrived: whether the caller must call `stop()` (the run exists).
    func shutDown() -> Bool {
        state.withLock { state in
            switch state {
            case .admitted:
                return true
            case .waiting, .shutDownBeforeAdmission:
                state = .shutDownBeforeAdmission
                return false
            }
        }
    }
}
