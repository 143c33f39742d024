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
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    /// Wraps `value`.
    package init(_ value: consuming Value) {
        self.value = value
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        // A default mutex attribute never fails to initialise on Linux (glibc and musl).
        _ = pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with exclusive access to the value.
    @inlinable
    package func withLock<Result, Failure: Error>(
        _ body: (inout Value) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        lock()
        defer { unlock() }
        return try body(&value)
    }

    @usableFromInline
    func lock() {
        pthread_mutex_lock(mutex)
    }

    @usableFromInline
    func unlock() {
        pthread_mutex_unlock(mutex)
    }
}
