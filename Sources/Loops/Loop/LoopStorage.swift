import CLoopsCore

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
        buffer = LoopStorageBuffer.make(machine)
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
    /// A new buffer holding `machine` behind a free lock, with an idle waker.
    static func make(_ machine: consuming LoopStateMachine) -> LoopStorageBuffer {
        let buffer = unsafeDowncast(
            LoopStorageBuffer.create(minimumCapacity: 1) { _ in Waker.Cell() },
            to: LoopStorageBuffer.self
        )
        var pending = Optional(machine)
        buffer.withUnsafeMutablePointerToElements { value in
            value.initialize(to: pending.take()!)
        }
        return buffer
    }

    deinit {
        _ = withUnsafeMutablePointerToElements { value in value.deinitialize(count: 1) }
    }

    /// Runs `body` with exclusive access to the state machine (``LockedStorage/withLock(_:)``,
    /// whose shape and reasons it shares).
    func withLock<Result, Failure: Error>(
        _ body: (inout LoopStateMachine) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        let (cell, machine) = withUnsafeMutablePointers { ($0, $1) }
        let lock = cell.pointer(to: \.companionLock)!
        cloops_lock(lock)
        defer { cloops_unlock(lock) }
        return try body(&machine.pointee)
    }
}
