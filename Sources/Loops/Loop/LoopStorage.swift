/// Everything about a loop that changes, in one allocation: its state machine behind the
/// loop's lock, and its waker's cell (the waker's own lock and state). The waker keeps its own
/// lock — engines arm it under their timer's lock, which the loop's lock is never held around —
/// but not its own object: apart, the state and the waker took two allocations of every loop
/// (352 and 64 bytes); together, one (336 bytes).
///
/// A struct around one reference, with the `withLock` shape of ``LockedValue``.
struct LoopStorage: @unchecked Sendable {
    private let buffer: LoopStorageBuffer

    /// Holds `machine` behind a free lock, with an idle waker.
    init(_ machine: consuming LoopStateMachine) {
        buffer = LoopStorageBuffer.make(header: Waker.Cell(), onlyElement: machine)
    }

    /// Runs `body` with exclusive access to the state machine.
    func withLock<Result, Failure: Error>(
        _ body: (inout LoopStateMachine) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try buffer.withLock(body)
    }

    /// The loop's waker, on the cell in the storage.
    var waker: Waker { Waker(buffer) }
}

/// ``LoopStorage``'s allocation: a ``WakerBuffer`` whose one element is the loop's state machine,
/// guarded by the cell's `companionLock`. An object never moves, as a futex word must not.
final class LoopStorageBuffer: WakerBuffer {
    deinit {
        deinitializeOnlyElement()
    }

    /// Runs `body` with exclusive access to the state machine, under the cell's companion lock.
    func withLock<Result, Failure: Error>(
        _ body: (inout LoopStateMachine) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try withOnlyElement(lockedBy: { $0.pointer(to: \.companionLock)! }, body)
    }
}
