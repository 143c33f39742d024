import Foundation
import Loops
import LoopsTestKit

/// What a test's loop did, with the virtual time (seconds since the clock's creation) at which
/// it did it: `"body@5"`, `"after@10"`.
final class EventLog: Sendable {
    private let entries = LockedValue<[String]>([])
    private let clock: VirtualClock
    private let origin: Duration

    init(_ clock: VirtualClock) {
        self.clock = clock
        self.origin = clock.uptime
    }

    /// Seconds since the log was created, printed without a trailing `.0`.
    var elapsed: String {
        let seconds = (clock.uptime - origin).components
        let value = Double(seconds.seconds) + Double(seconds.attoseconds) / 1e18
        return value == value.rounded() ? String(Int(value)) : String(value)
    }

    func record(_ event: String) {
        let stamp = elapsed
        entries.withLock { $0.append("\(event)@\(stamp)") }
    }

    var events: [String] { entries.withLock { $0 } }

    func count(of prefix: String) -> Int {
        events.filter { $0.hasPrefix(prefix + "@") }.count
    }
}

/// A counter shared with a `@Sendable` body.
final class Counter: Sendable {
    private let value = LockedValue(0)

    @discardableResult
    func increment() -> Int {
        value.withLock { $0 += 1; return $0 }
    }

    var current: Int { value.withLock { $0 } }
}

struct HandledTestError: Error, Equatable {}
struct UnhandledTestError: Error, Equatable {}
struct SomeTransientError: TransientError {}
