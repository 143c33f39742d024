#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A value behind a `pthread_mutex_t`, with the `withLock` shape of `Synchronization.Mutex`.
///
/// Why not `Mutex`: on Linux, Swift 6.3's `Mutex` is a priority-inheritance futex that
/// ThreadSanitizer cannot see, so every contended `withLock` is reported as a race
/// (swiftlang/swift#88440). A plain pthread mutex is understood by TSan, which keeps
/// "ThreadSanitizer clean" a checkable promise. The lock is not recursive: never call back into
/// code that takes the same lock from inside `withLock`.
package final class LockedValue<Value: ~Copyable>: @unchecked Sendable {
    /// The mutex and the value in one allocation that never moves (a `pthread_mutex_t` must
    /// not), reached through a pointer: an access through a pointer needs no dynamic
    /// exclusivity check, which a class's stored `var` costs on every `withLock` (a
    /// thread-local lookup and an access-set insertion: 5–10 % of a loop's instructions per
    /// tick, measured with callgrind).
    private let storage: UnsafeMutablePointer<Storage>

    private struct Storage: ~Copyable {
        var mutex = pthread_mutex_t()
        var value: Value
    }

    /// Wraps `value`.
    package init(_ value: consuming Value) {
        storage = UnsafeMutablePointer<Storage>.allocate(capacity: 1)
        storage.initialize(to: Storage(value: value))
        // A default mutex attribute never fails to initialise on Linux (glibc and musl).
        _ = pthread_mutex_init(&storage.pointee.mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(&storage.pointee.mutex)
        storage.deinitialize(count: 1)
        storage.deallocate()
    }

    /// Runs `body` with exclusive access to the value.
    @inlinable
    package func withLock<Result, Failure: Error>(
        _ body: (inout Value) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        lock()
        defer { unlock() }
        return try body(&storage.pointee.value)
    }

    @usableFromInline
    func lock() {
        pthread_mutex_lock(&storage.pointee.mutex)
    }

    @usableFromInline
    func unlock() {
        pthread_mutex_unlock(&storage.pointee.mutex)
    }
}
