import CLoopsCore

/// A value behind a lock, with the `withLock` shape of `Synchronization.Mutex`.
///
/// The lock is one 32-bit word (`cloops_lock`: glibc's low-level lock over futex(2), in the C
/// core). Why not `Mutex`: on Linux, Swift 6.3's `Mutex` is a priority-inheritance futex whose
/// acquisition ThreadSanitizer cannot see, so every contended `withLock` is reported as a race
/// (swiftlang/swift#88440); the C core's lock acquires and releases with atomics that TSan
/// instruments, which keeps "ThreadSanitizer clean" a checkable promise. Why not
/// `pthread_mutex_t`: 40 bytes against 4, and ~55 instructions a lock and unlock against ~15
/// (measured with callgrind; a loop holds two locks and takes six a tick in precision mode). The
/// lock is not recursive: never call back into code that takes the same lock from inside
/// `withLock`.
///
/// A struct around one reference: copies share the lock and the value.
package struct LockedValue<Value: ~Copyable>: @unchecked Sendable {
    private let storage: LockedStorage<Value>

    /// Wraps `value`.
    package init(_ value: consuming Value) {
        storage = LockedStorage.make(header: 0, onlyElement: value)
    }

    /// Runs `body` with exclusive access to the value.
    package func withLock<Result, Failure: Error>(
        _ body: (inout Value) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try storage.withLock(body)
    }
}

/// The lock word and the value in one allocation, as swift-nio's `LockStorage`: a
/// `ManagedBuffer` whose header is the lock word and whose one element is the value. An object
/// never moves, as a futex word must not; both are reached through pointers, which need no dynamic
/// exclusivity check (a class's stored `var` costs one on every access: a thread-local lookup
/// and an access-set insertion, 5–10 % of a loop's instructions per tick, measured with
/// callgrind); and one allocation instead of an object and a separate block saves 32 bytes
/// per lock, three of which every loop holds.
final class LockedStorage<Value: ~Copyable>: ManagedBuffer<UInt32, Value> {
    deinit {
        deinitializeOnlyElement()
    }

    /// Runs `body` with exclusive access to the value.
    func withLock<Result, Failure: Error>(
        _ body: (inout Value) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try withOnlyElement(lockedBy: { $0 }, body)
    }
}

/// A buffer made with room for one element that a lock word in its header guards: a value
/// behind a lock (``LockedStorage``), a loop's state machine (``LoopStorageBuffer``).
extension ManagedBuffer where Element: ~Copyable {
    /// A new buffer of this class with `header` and `element` as its one element.
    static func make(header: Header, onlyElement element: consuming Element) -> Self {
        let buffer = unsafeDowncast(create(minimumCapacity: 1) { _ in header }, to: Self.self)
        var pending = Optional(element)
        buffer.withUnsafeMutablePointerToElements { element in
            element.initialize(to: pending.take()!)
        }
        return buffer
    }

    /// Ends the one element's life (from the deinit of the subclass that made it).
    func deinitializeOnlyElement() {
        _ = withUnsafeMutablePointerToElements { element in element.deinitialize(count: 1) }
    }

    /// Runs `body` with exclusive access to the one element, under the lock word that
    /// `lockWord` finds in the header (`cloops_lock`/`cloops_unlock`).
    @inline(__always)
    func withOnlyElement<Result, Failure: Error>(
        lockedBy lockWord: (UnsafeMutablePointer<Header>) -> UnsafeMutablePointer<UInt32>,
        _ body: (inout Element) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        // The pointers leave `withUnsafeMutablePointers`: the header and the element live in
        // this object, which never moves and outlives the call. Calling `body` inside it instead
        // meant carrying the outcome across it in a `Result` (it rethrows untyped errors): two
        // more copies of every transition's step, under the lock.
        let (header, element) = withUnsafeMutablePointers { ($0, $1) }
        let word = lockWord(header)
        cloops_lock(word)
        defer { cloops_unlock(word) }
        return try body(&element.pointee)
    }
}
