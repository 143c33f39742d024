/// Every loop of the process that has been started and not yet deallocated, held weakly: what
/// ``Loop/registered`` lists.
final class LoopRegistry: Sendable {
    static let shared = LoopRegistry()

    private struct Entry {
        let order: UInt64
        weak var loop: Loop?
    }

    private struct Entries {
        var byLoop: [ObjectIdentifier: Entry] = [:]
        var nextOrder: UInt64 = 0
    }

    private let entries = LockedValue(Entries())

    /// Adds `loop` if it is not listed yet.
    func register(_ loop: Loop) {
        let key = ObjectIdentifier(loop)
        entries.withLock { entries in
            guard entries.byLoop[key] == nil else { return }
            entries.byLoop[key] = Entry(order: entries.nextOrder, loop: loop)
            entries.nextOrder += 1
        }
    }

    /// Removes the loop with identity `key` (from its `deinit`).
    func unregister(_ key: ObjectIdentifier) {
        _ = entries.withLock { $0.byLoop.removeValue(forKey: key) }
    }

    /// The live loops, in the order they were first started.
    var loops: [Loop] {
        let listed = entries.withLock { entries in
            entries.byLoop.values.compactMap { entry in entry.loop.map { (entry.order, $0) } }
        }
        return listed.sorted { $0.0 < $1.0 }.map(\.1)
    }
}
