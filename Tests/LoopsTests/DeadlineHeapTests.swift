import Testing

@testable import Loops

@Suite("DeadlineHeap")
struct DeadlineHeapTests {
    @Test("an empty heap has no minimum and pops nothing")
    func emptyHeap() {
        var heap = DeadlineHeap<Int>()
        #expect(heap.isEmpty)
        #expect(heap.minimumDeadline == nil)
        #expect(heap.popMinimum() == nil)
    }

    @Test("entries come out in deadline order")
    func popsInDeadlineOrder() {
        var heap = DeadlineHeap<Int>()
        let deadlines: [Int64] = [50, 10, 40, -5, 30, 20, Int64.max, Int64.min, 0]
        for deadline in deadlines { heap.insert(deadline: deadline, payload: Int(truncatingIfNeeded: deadline)) }
        #expect(heap.count == deadlines.count)
        var popped: [Int64] = []
        while let entry = heap.popMinimum() {
            #expect(entry.payload == Int(truncatingIfNeeded: entry.deadline))
            popped.append(entry.deadline)
        }
        #expect(popped == deadlines.sorted())
    }

    @Test("equal deadlines come out in the order they were reserved")
    func equalDeadlinesAreFIFO() {
        var heap = DeadlineHeap<Int>()
        let late = heap.reserve()
        for payload in 0..<20 { heap.insert(deadline: 7, payload: payload) }
        heap.insert(deadline: 7, payload: -1, at: late)
        var order: [Int] = []
        while let entry = heap.popMinimum() { order.append(entry.payload) }
        #expect(order == [-1] + Array(0..<20))
    }

    @Test("across the tickets' wrap, equal deadlines keep reservation order and handles stay exact")
    func ticketsWrap() {
        var heap = DeadlineHeap<Int>(firstTicket: UInt32.max - 9)
        let late = heap.reserve()
        var handles: [DeadlineHeap<Int>.Handle] = []
        for payload in 0..<20 { handles.append(heap.insert(deadline: 7, payload: payload)) }
        heap.insert(deadline: 7, payload: -1, at: late)
        // Handles on both sides of the wrap name their own entries.
        #expect(heap.remove(handles[5]) == 5)
        #expect(heap.remove(handles[15]) == 15)
        #expect(heap.remove(handles[15]) == nil)
        var order: [Int] = []
        while let entry = heap.popMinimum() { order.append(entry.payload) }
        #expect(order == [-1] + Array(0..<20).filter { $0 != 5 && $0 != 15 })
    }

    @Test("an arbitrary entry can be removed and the rest keep their order")
    func removeFromTheMiddle() {
        var heap = DeadlineHeap<String>()
        let a = heap.insert(deadline: 10, payload: "a")
        let b = heap.insert(deadline: 20, payload: "b")
        let c = heap.insert(deadline: 5, payload: "c")
        let d = heap.insert(deadline: 15, payload: "d")
        #expect(heap.remove(a) == "a")
        #expect(!heap.contains(a))
        #expect(heap.contains(b) && heap.contains(c) && heap.contains(d))
        #expect(heap.remove(c) == "c")
        #expect(heap.minimumDeadline == 15)
        #expect(heap.popMinimum()?.payload == "d")
        #expect(heap.popMinimum()?.payload == "b")
        #expect(heap.isEmpty)
    }

    @Test("a handle whose entry is gone removes nothing, even when its slot was reused")
    func staleHandleIsHarmless() {
        var heap = DeadlineHeap<Int>()
        let first = heap.insert(deadline: 1, payload: 1)
        #expect(heap.popMinimum()?.payload == 1)
        let second = heap.insert(deadline: 2, payload: 2)
        #expect(first != second)
        #expect(heap.remove(first) == nil)
        #expect(heap.contains(second))
        #expect(heap.count == 1)
    }

    @Test("a reservation given back cannot be inserted any more")
    func reservationGivenBack() {
        var heap = DeadlineHeap<Int>()
        let handle = heap.reserve()
        #expect(heap.count == 0)
        #expect(!heap.contains(handle))
        #expect(heap.remove(handle) == nil)
        let insertedAfterGivingBack = heap.insert(deadline: 3, payload: 3, at: handle)
        #expect(!insertedAfterGivingBack)
        #expect(heap.isEmpty)

        let other = heap.reserve()
        let insertedOnce = heap.insert(deadline: 4, payload: 4, at: other)
        let insertedTwice = heap.insert(deadline: 5, payload: 5, at: other)
        #expect(insertedOnce)
        #expect(!insertedTwice)
        #expect(heap.count == 1)
    }

    @Test("popAll(dueAt:) takes exactly the entries at or before the instant, in order")
    func popAllDue() {
        var heap = DeadlineHeap<Int64>()
        for deadline: Int64 in [30, 10, 20, 40, 20, 50] { heap.insert(deadline: deadline, payload: deadline) }
        var due: [Int64] = []
        heap.popAll(dueAt: 20, into: &due)
        #expect(due == [10, 20, 20])
        #expect(heap.minimumDeadline == 30)
        heap.popAll(dueAt: 29, into: &due)
        #expect(due.count == 3)
        var rest: [Int64] = []
        heap.removeAll(into: &rest)
        #expect(rest.sorted() == [30, 40, 50])
        #expect(heap.isEmpty)
    }

    @Test("after a burst drains, old handles stay stale and the heap keeps working")
    func shrinksAfterBurst() {
        var heap = DeadlineHeap<Int>()
        var handles: [DeadlineHeap<Int>.Handle] = []
        for index in 0..<5000 { handles.append(heap.insert(deadline: Int64(5000 - index), payload: index)) }
        var drained: [Int] = []
        heap.popAll(dueAt: .max, into: &drained)
        #expect(drained.count == 5000)
        #expect(drained.first == 4999)
        let fresh = heap.insert(deadline: 9, payload: 9)
        for handle in handles.prefix(10) { #expect(heap.remove(handle) == nil) }
        #expect(heap.contains(fresh))
        #expect(heap.popMinimum()?.payload == 9)
    }

    @Test("random inserts, removals and pops agree with a sorted-array model", arguments: [1, 2, 3, 42])
    func randomAgainstModel(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        var heap = DeadlineHeap<Int>()
        // The model: (deadline, reservation order, payload, handle), kept sorted.
        var model: [(deadline: Int64, order: Int, payload: Int, handle: DeadlineHeap<Int>.Handle)] = []
        var removedHandles: [DeadlineHeap<Int>.Handle] = []
        var order = 0

        for step in 0..<10_000 {
            let choice = Int.random(in: 0..<10, using: &random)
            if choice < 5 || model.isEmpty {
                // Few distinct deadlines, so ties are frequent.
                let deadline = Int64.random(in: -50...200, using: &random)
                let handle = heap.insert(deadline: deadline, payload: step)
                let entry = (deadline: deadline, order: order, payload: step, handle: handle)
                order += 1
                let index = model.firstIndex { ($0.deadline, $0.order) > (deadline, entry.order) } ?? model.count
                model.insert(entry, at: index)
            } else if choice < 8 {
                let index = Int.random(in: 0..<model.count, using: &random)
                let entry = model.remove(at: index)
                #expect(heap.remove(entry.handle) == entry.payload)
                removedHandles.append(entry.handle)
            } else if choice < 9 {
                let popped = heap.popMinimum()
                let expected = model.removeFirst()
                #expect(popped?.deadline == expected.deadline)
                #expect(popped?.payload == expected.payload)
                removedHandles.append(expected.handle)
            } else if let stale = removedHandles.randomElement(using: &random) {
                #expect(heap.remove(stale) == nil)
            }
            #expect(heap.count == model.count)
            #expect(heap.minimumDeadline == model.first?.deadline)
        }
        var rest: [Int] = []
        heap.popAll(dueAt: .max, into: &rest)
        #expect(rest == model.map(\.payload))
    }
}
