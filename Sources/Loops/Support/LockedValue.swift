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
///
/// A struct around one reference: copies share the lock and the value.
package struct LockedValue<Value: ~Copyable>: @unchecked Sendable {
    private let storage: LockedStorage<Value>

    /// Wraps `value`.
    package init(_ value: consuming Value) {
        storage = LockedStorage.make(value)
    }

    /// Runs `body` with exclusive access to the value.
    package func withLock<Result, Failure: Error>(
        _ body: (inout Value) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        try storage.withLock(body)
    }
}

/// The mutex and the value in one allocation, as swift-nio's `LockStorage`: a `ManagedBuffer`
/// whose header is the mutex and whose one element is the value. An object never moves, as a
/// `pthread_mutex_t` must not; both are reached through pointers, which need no dynamic
/// exclusivity check (a class's stored `var` costs one on every access: a thread-local lookup
/// and an access-set insertion, 5–10 % of a loop's instructions per tick, measured with
/// callgrind); and one allocation instead of an object and a separate block saves 32 bytes
/// per lock, three of which every loop holds.
final class LockedStorage<Value: ~Copyable>: ManagedBuffer<pthread_mutex_t, Value> {
    /// A new storage holding `value` behind an initialised mutex.
    static func make(_ value: consuming Value) -> LockedStorage<Value> {
        let storage = unsafeDowncast(
            LockedStorage<Value>.create(minimumCapacity: 1) { _ in pthread_mutex_t() },
            to: LockedStorage<Value>.self
        )
        var pending = Optional(value)
        storage.withUnsafeMutablePointers { mutex, value in
            // A default mutex attribute never fails to initialise on Linux (glibc and musl).
            _ = pthread_mutex_init(mutex, nil)
            value.initialize(to: pending.take()!)
        }
        return storage
    }

    deinit {
        withUnsafeMutablePointers { mutex, value in
            pthread_mutex_destroy(mutex)
            _ = value.deinitialize(count: 1)
        }
    }

    /// Runs `body` with exclusive access to the value.
    func withLock<Result, Failure: Error>(
        _ body: (inout Value) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        // `withUnsafeMutablePointers` rethrows untyped errors: the outcome crosses it as a value.
        let outcome: Swift.Result<Result, Failure> = withUnsafeMutablePointers { mutex, value in
            pthread_mutex_lock(mutex)
            defer { pthread_mutex_unlock(mutex) }
            do throws(Failure) {
                return .success(try body(&value.pointee))
            } catch {
                return .failure(error)
            }
        }
        return try outcome.get()
    }
}
