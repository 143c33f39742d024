/// A binary min-heap of deadlines whose entries can also be removed from the middle.
///
/// Every entry lives in a slot of a slab; the heap itself is an array of small
/// `(deadline, ticket, slot)` records, and each slot remembers where its record sits in the
/// heap, so removal of an arbitrary entry (a cancelled sleep) is O(log n) like insertion.
/// Equal deadlines come out in the order their handles were reserved.
///
/// A ``Handle`` is reserved before the entry is inserted: a sleeper needs its handle for the
/// cancellation handler before it has a continuation to insert. Handles carry a ticket, so a
/// handle whose entry was already popped does not remove a later entry that reuses the same
/// slot.
///
/// Tickets are 32 bits and wrap (after 2³² reservations: half a day at 100,000 sleeps a
/// second): a stale handle names another entry only if it is kept that long and its slot's
/// current ticket is exactly its own. The handles kept after their sleep (a loop's waker holds
/// one until its next sleep) then end that entry's sleep early — a sleep that a wake may end
/// anyway, whose loop re-decides and sleeps again. Equal deadlines come out in reservation
/// order while their tickets are less than 2³¹ apart. 64-bit tickets made each entry 16 bytes
/// larger, in every sleeping loop.
///
/// Memory: 16 bytes of heap record and 16 bytes of slot per entry (for a pointer-sized
/// payload), plus the free amortised capacity of the arrays.
package struct DeadlineHeap<Payload> {
    /// Names one reserved or inserted entry.
    package struct Handle: Hashable, Sendable {
        fileprivate let slot: Int32
        fileprivate let ticket: UInt32

        /// The handle as a ``WakeToken``, and back.
        var token: WakeToken { WakeToken(slot: slot, ticket: ticket) }
        init(_ token: WakeToken) {
            slot = token.slot
            ticket = token.ticket
        }
        fileprivate init(slot: Int32, ticket: UInt32) {
            self.slot = slot
            self.ticket = ticket
        }
    }

    private struct Record {
        var deadline: Int64
        var ticket: UInt32
        var slot: Int32

        /// Earlier deadline first; on a tie, the earlier reservation first (tickets compared
        /// across their wrap: the one fewer than 2³¹ reservations after the other is later).
        @inline(__always)
        func precedes(_ other: Record) -> Bool {
            deadline != other.deadline ? deadline < other.deadline : Int32(bitPattern: ticket &- other.ticket) < 0
        }
    }

    private struct Slot {
        /// The ticket of the handle that owns the slot; stale handles do not match it.
        var ticket: UInt32
        /// Index of the slot's record in `records`, or one of the markers below.
        var position: Int32
        var payload: Payload?
    }

    private static var free: Int32 { -1 }
    private static var reserved: Int32 { -2 }

    private var records: [Record] = []
    private var slots: [Slot] = []
    private var freeSlots: [Int32] = []
    private var nextTicket: UInt32 = 0
    private var reservations = 0

    /// An empty heap.
    package init() {}

    /// An empty heap whose first reservation gets `firstTicket`: lets tests cross the wrap.
    init(firstTicket: UInt32) {
        nextTicket = firstTicket
    }

    /// The number of inserted entries (reserved handles do not count).
    package var count: Int { records.count }

    /// Whether no entry is inserted.
    package var isEmpty: Bool { records.isEmpty }

    /// The earliest deadline, or nil when the heap is empty.
    package var minimumDeadline: Int64? { records.first?.deadline }

    /// Reserves a handle for an entry that will be inserted later with
    /// ``insert(deadline:payload:at:)`` (or given back with ``remove(_:)``).
    package mutating func reserve() -> Handle {
        reservations += 1
        return place(position: Self.reserved, payload: nil)
    }

    /// Inserts an entry under a reserved handle.
    ///
    /// - Returns: false (and inserts nothing) when `handle` is not a pending reservation, for
    ///   instance because it was already removed.
    @discardableResult
    package mutating func insert(deadline: Int64, payload: Payload, at handle: Handle) -> Bool {
        guard let slot = slotIndex(of: handle), slots[slot].position == Self.reserved else { return false }
        reservations -= 1
        slots[slot].payload = payload
        records.append(Record(deadline: deadline, ticket: handle.ticket, slot: handle.slot))
        siftUp(records.count - 1)
        return true
    }

    /// Inserts an entry under a new handle: what ``reserve()`` and
    /// ``insert(deadline:payload:at:)`` do together, with one write of the slot and no
    /// reservation to count (every sleep of a loop comes here).
    @discardableResult
    package mutating func insert(deadline: Int64, payload: Payload) -> Handle {
        let handle = place(position: Int32(records.count), payload: payload)
        records.append(Record(deadline: deadline, ticket: handle.ticket, slot: handle.slot))
        siftUp(records.count - 1)
        return handle
    }

    /// Whether `handle` is reserved or inserted: a removal would end its sleep.
    package func holds(_ handle: Handle) -> Bool {
        slotIndex(of: handle) != nil
    }

    /// Whether `handle` names an inserted entry.
    package func contains(_ handle: Handle) -> Bool {
        guard let slot = slotIndex(of: handle) else { return false }
        return slots[slot].position >= 0
    }

    /// Removes the entry of `handle` and returns its payload, or gives back a reservation that
    /// was never inserted (returning nil). Returns nil for a handle whose entry is gone.
    @discardableResult
    package mutating func remove(_ handle: Handle) -> Payload? {
        guard let slot = slotIndex(of: handle) else { return nil }
        let position = slots[slot].position
        if position == Self.reserved {
            reservations -= 1
            release(slot)
            return nil
        }
        guard position >= 0 else { return nil }
        return removeRecord(at: Int(position))
    }

    /// Removes and returns the entry with the earliest deadline.
    package mutating func popMinimum() -> (deadline: Int64, payload: Payload)? {
        guard let first = records.first else { return nil }
        guard let payload = removeRecord(at: 0) else { return nil }
        return (first.deadline, payload)
    }

    /// Removes every entry whose deadline is ≤ `now`, appending their payloads in deadline order.
    package mutating func popAll(dueAt now: Int64, into payloads: inout [Payload]) {
        while let first = records.first, first.deadline <= now {
            if let payload = removeRecord(at: 0) { payloads.append(payload) }
        }
    }

    /// Removes every inserted entry (reservations stay pending), appending their payloads.
    package mutating func removeAll(into payloads: inout [Payload]) {
        for record in records {
            let slot = Int(record.slot)
            if let payload = slots[slot].payload { payloads.append(payload) }
            release(slot)
        }
        records.removeAll()
        shrinkIfIdle()
    }

    // MARK: - Internals

    /// A new ticket in a free slot (or a new one) holding `position` and `payload`.
    private mutating func place(position: Int32, payload: Payload?) -> Handle {
        let ticket = nextTicket
        nextTicket &+= 1
        let slot = Slot(ticket: ticket, position: position, payload: payload)
        if let free = freeSlots.popLast() {
            slots[Int(free)] = slot
            return Handle(slot: free, ticket: ticket)
        }
        slots.append(slot)
        return Handle(slot: Int32(slots.count - 1), ticket: ticket)
    }

    private func slotIndex(of handle: Handle) -> Int? {
        let slot = Int(handle.slot)
        guard slot >= 0, slot < slots.count, slots[slot].ticket == handle.ticket,
              slots[slot].position != Self.free
        else { return nil }
        return slot
    }

    private mutating func release(_ slot: Int) {
        slots[slot].position = Self.free
        slots[slot].payload = nil
        freeSlots.append(Int32(slot))
        shrinkIfIdle()
    }

    /// After a burst of 100k sleepers the slab would otherwise keep its peak size forever.
    private mutating func shrinkIfIdle() {
        guard records.isEmpty, reservations == 0, slots.count > 1024 else { return }
        records = []
        slots = []
        freeSlots = []
    }

    private mutating func removeRecord(at index: Int) -> Payload? {
        let slot = Int(records[index].slot)
        // Moved out, not copied: no retain here and no release in `release(_:)`.
        let payload = slots[slot].payload.take()
        let last = records.removeLast()
        if index < records.count {
            records[index] = last
            slots[Int(last.slot)].position = Int32(index)
            if index > 0, last.precedes(records[(index - 1) / 2]) {
                siftUp(index)
            } else {
                siftDown(index)
            }
        }
        release(slot)
        return payload
    }

    private mutating func siftUp(_ start: Int) {
        let moving = records[start]
        var index = start
        while index > 0 {
            let parent = (index - 1) / 2
            guard moving.precedes(records[parent]) else { break }
            records[index] = records[parent]
            slots[Int(records[index].slot)].position = Int32(index)
            index = parent
        }
        records[index] = moving
        slots[Int(moving.slot)].position = Int32(index)
    }

    private mutating func siftDown(_ start: Int) {
        let moving = records[start]
        let count = records.count
        var index = start
        while true {
            let left = 2 * index + 1
            guard left < count else { break }
            let right = left + 1
            let child = right < count && records[right].precedes(records[left]) ? right : left
            guard records[child].precedes(moving) else { break }
            records[index] = records[child]
            slots[Int(records[index].slot)].position = Int32(index)
            index = child
        }
        records[index] = moving
        slots[Int(moving.slot)].position = Int32(index)
    }
}
