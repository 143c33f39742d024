/// Every loop of the process that has been started and not yet deallocated: what
/// ``Loop/registered`` lists.
///
/// A running loop is held strongly, an ended one weakly. A running loop's task keeps it alive
/// anyway, and the first weak reference to an object gives it a 32-byte side table for the rest
/// of its life: formed at `start()`, it cost every running loop 48 bytes of heap; formed when
/// its runs end, only loops that ended pay it.
///
/// The entries are an array that each loop knows its place in (``Loop/registrySlot``), with the
/// places of deallocated loops reused: a dictionary keyed by the loop cost 63 bytes per loop at
/// 100,000 loops (its buckets are at most three-quarters full and scattered over every page),
/// the array 16.
final class LoopRegistry: Sendable {
    static let shared = LoopRegistry()

    /// A place: a running loop, held strongly, or a loop whose runs have ended, held weakly in
    /// ``Entries/ended`` (a weak reference beside every strong one took every running loop 8
    /// bytes more; a loop whose runs have ended pays a dictionary entry instead).
    private struct Entry {
        /// The order of first registration; ``Entry/unused`` for a free place.
        var order: UInt64
        /// Set from the loop's admission until its runs have ended.
        var running: Loop?

        static let unused = UInt64.max
    }

    private struct WeakLoop {
        weak var loop: Loop?
    }

    private struct Entries {
        var places: [Entry] = []
        /// The loops of places whose runs have ended, by place. Made with storage: its type is
        /// then made when the registry is, at the first `start()`, not when the first run ends
        /// (a one-time lookup of ~400,000 instructions, in the middle of a loop's end).
        var ended = [Int32: WeakLoop](minimumCapacity: 1)
        var free: [Int32] = []
        var nextOrder: UInt64 = 0
    }

    private let entries = LockedValue(Entries())

    /// Adds `loop`, or holds it strongly again: it has a run whose task has not been made yet.
    /// Called before that task exists, so that the run's end (``runsEnded(_:)``) comes after.
    func register(_ loop: Loop) {
        entries.withLock { entries in
            let place = loop.registrySlot
            if place >= 0 {
                entries.places[Int(place)].running = loop
                entries.ended[place] = nil
                return
            }
            let entry = Entry(order: entries.nextOrder, running: loop)
            entries.nextOrder += 1
            if let reused = entries.free.popLast() {
                entries.places[Int(reused)] = entry
                loop.registrySlot = reused
            } else {
                loop.registrySlot = Int32(entries.places.count)
                entries.places.append(entry)
            }
        }
    }

    /// `loop` has no run any more: holds it weakly. (A run admitted just before this call is
    /// then held weakly until it ends; its task keeps the loop alive meanwhile.)
    func runsEnded(_ loop: Loop) {
        entries.withLock { entries in
            let place = loop.registrySlot
            guard place >= 0, entries.places[Int(place)].running != nil else { return }
            entries.ended[place] = WeakLoop(loop: loop)
            entries.places[Int(place)].running = nil
        }
    }

    /// Frees `place`, the place of a loop being deallocated (from its `deinit`; -1 for a loop
    /// never started).
    func unregister(place: Int32) {
        guard place >= 0 else { return }
        entries.withLock { entries in
            entries.places[Int(place)] = Entry(order: Entry.unused)
            entries.ended[place] = nil
            entries.free.append(place)
        }
    }

    /// The live loops, in the order they were first started.
    var loops: [Loop] {
        let listed = entries.withLock { entries in
            entries.places.indices.compactMap { place -> (UInt64, Loop)? in
                let entry = entries.places[place]
                guard let loop = entry.running ?? entries.ended[Int32(place)]?.loop else { return nil }
                return (entry.order, loop)
            }
        }
        return listed.sorted { $0.0 < $1.0 }.map(\.1)
    }
}
