import Foundation
import Loops
import LoopsTestKit
import Testing

/// What a store test's loop saw: bodies with their slot and token, errors, `afterLoop`.
private final class StoreProbe: Sendable {
    let log: EventLog
    private let seen = LockedValue<[(slot: Date?, token: UInt64?)]>([])
    private let errors = LockedValue<[any Error]>([])

    init(_ clock: VirtualClock) { log = EventLog(clock) }

    func body(_ loop: Loop) {
        seen.withLock { $0.append((loop.scheduledInstant, loop.fencingToken)) }
        log.record("body")
    }

    func attach(to loop: Loop) {
        loop.onError { _, error in
            self.errors.withLock { $0.append(error) }
            self.log.record("onError")
        }
        loop.afterLoop { _ in self.log.record("after") }
    }

    var slots: [Date?] { seen.withLock { $0.map(\.slot) } }
    var tokens: [UInt64?] { seen.withLock { $0.map(\.token) } }
    var errorCodes: [LoopError.Code?] { errors.withLock { $0.map { ($0 as? LoopError)?.code } } }
}

@Suite("Loops with a run store: claims, skipped slots, lapsed slots, catch-up (virtual time)")
struct LoopStoreTests {
    /// 2026-01-01T00:00:00Z, where every VirtualClock starts.
    static let origin = Date(timeIntervalSince1970: 1_767_225_600)

    @Test("each slot is claimed before its body, the body sees the token, the end is recorded; interval slots count from the epoch")
    func claimsEverySlot() async throws {
        let clock = VirtualClock()
        await clock.advance(by: .milliseconds(1500))
        let store = MemoryRunStore()
        let probe = StoreProbe(clock)
        let loop = try Loop(seconds: 5, count: 3, name: "job", store: store, clock: clock.loopClock) { probe.body($0) }
        probe.attach(to: loop)
        try loop.start()
        await clock.advance(by: .seconds(20))
        // Started at +1.5 s: slots at the multiples of 5 s since 1970, the first at +5 s.
        #expect(probe.log.events == ["body@3.5", "body@8.5", "body@13.5", "after@13.5"])
        let slots = [5.0, 10, 15].map { Self.origin.addingTimeInterval($0) }
        #expect(probe.slots == slots)
        #expect(probe.tokens == [1, 2, 3])
        #expect(store.completions.map(\.scheduledAt) == slots)
        #expect(store.completions.map(\.outcome) == [.succeeded, .succeeded, .succeeded])
        #expect(loop.fencingToken == nil)
        #expect(loop.currentLoop == 3)
    }

    @Test("a slot the store refuses (it ran elsewhere) is skipped and does not count")
    func refusedSlotIsSkipped() async throws {
        let clock = VirtualClock()
        let store = MemoryRunStore()
        store.refuse(Self.origin.addingTimeInterval(5))
        let probe = StoreProbe(clock)
        let loop = try Loop(seconds: 5, count: 2, name: "job", store: store, clock: clock.loopClock) { probe.body($0) }
        probe.attach(to: loop)
        try loop.start()
        await clock.advance(by: .seconds(20))
        #expect(probe.log.events == ["body@0", "body@10", "after@10"])
        #expect(probe.slots == [Self.origin, Self.origin.addingTimeInterval(10)])
        #expect(store.asked == [0.0, 5, 10].map { Self.origin.addingTimeInterval($0) })
        #expect(store.completions.count == 2)
    }

    @Test("a store that fails is retried after a back-off: the loop goes on, the slot runs once")
    func failingStoreIsRetried() async throws {
        let clock = VirtualClock()
        let store = MemoryRunStore()
        store.failNextClaims(2)
        let probe = StoreProbe(clock)
        let loop = try Loop(seconds: 60, count: 1, name: "job", store: store, clock: clock.loopClock) { probe.body($0) }
        probe.attach(to: loop)
        try loop.start()
        await clock.advance(by: .seconds(30))
        #expect(store.asked.count == 3)
        #expect(store.asked.allSatisfy { $0 == Self.origin })
        #expect(probe.log.count(of: "body") == 1)
        #expect(probe.slots == [Self.origin])
        #expect(probe.errorCodes.isEmpty)
        #expect(!loop.failed)
    }

    @Test("while the store fails the loop is waitingForStore and healthy however long it lasts; the body's stall clock starts at its claim")
    func waitingForTheStore() async throws {
        let clock = VirtualClock()
        let store = MemoryRunStore()
        store.failNextClaims(1_000)
        let loop = try Loop(seconds: 3600, count: 1, name: "job", store: store, clock: clock.loopClock) { _ in
            try await clock.sleep(for: .seconds(20))
        }
        loop.setBackoffJitter { _ in 1 }
        try loop.start()
        await clock.advance(by: .seconds(600))
        #expect(loop.status.activity == .waitingForStore)
        #expect(loop.health(stallTimeout: .seconds(30), overdueTolerance: .seconds(1)) == .healthy)
        #expect(store.asked.count > 500)

        // The store is back: the next retry (within 1 s) claims, and the body runs 20 s.
        store.failNextClaims(0)
        await clock.advance(by: .seconds(1))
        #expect(loop.status.activity == .runningBody)
        await clock.advance(by: .seconds(10))
        // 611 s after the slot, 10–11 s into the body: stalled only past a stall timeout that
        // short, measured from the claim.
        #expect(loop.health(stallTimeout: .seconds(30)) == .healthy)
        guard case .stalled(.runningBody, let running) = loop.health(stallTimeout: .seconds(5)) else {
            Issue.record("a body 10 s in is not stalled past 5 s: \(loop.health(stallTimeout: .seconds(5)))")
            return
        }
        #expect(running >= .seconds(10) && running <= .seconds(11), "\(running)")

        // Recording the end fails twice: waiting for the store again, healthy, then recorded.
        store.failNextCompletions(2)
        await clock.advance(by: .seconds(10.01))
        #expect(loop.status.activity == .waitingForStore)
        #expect(loop.health(stallTimeout: .seconds(5), overdueTolerance: .seconds(1)) == .healthy)
        await clock.advance(by: .seconds(1))
        #expect(store.completions.map(\.outcome) == [.succeeded])
        #expect(loop.status.activity == .idle)
    }

    @Test("an earlier slot handed over (its process died) runs first, then the slot asked for, with higher tokens")
    func lapsedSlotRunsAgain() async throws {
        let clock = VirtualClock()
        let store = MemoryRunStore()
        let lapsed = Self.origin.addingTimeInterval(-10)
        store.handOverOnNextClaim(lapsed)
        let probe = StoreProbe(clock)
        let loop = try Loop(seconds: 5, count: 3, name: "job", store: store, clock: clock.loopClock) { probe.body($0) }
        probe.attach(to: loop)
        try loop.start()
        await clock.advance(by: .seconds(20))
        #expect(probe.slots == [lapsed, Self.origin, Self.origin.addingTimeInterval(5)])
        #expect(probe.tokens == [1, 2, 3])
        #expect(probe.log.events == ["body@0", "body@0", "body@5", "after@5"])
        #expect(store.completions.map(\.scheduledAt) == [lapsed, Self.origin, Self.origin.addingTimeInterval(5)])
    }

    @Test("a lost claim cancels the body: LoopError .claimLost through onError, the end is recorded as failed")
    func lostClaimCancelsTheBody() async throws {
        let clock = VirtualClock()
        let store = MemoryRunStore()
        let probe = StoreProbe(clock)
        let cancelled = Counter()
        let loop = try Loop(seconds: 5, name: "job", store: store, clock: clock.loopClock) { loop in
            probe.body(loop)
            do {
                try await clock.sleep(for: .seconds(100))
            } catch {
                cancelled.increment()
                throw error
            }
        }
        probe.attach(to: loop)
        try loop.start()
        await clock.advance(by: .seconds(1))
        #expect(await waitUntil { store.waitingForLoss == 1 })
        store.lose(token: 1)
        #expect(await waitUntil { !loop.isRunning })
        #expect(cancelled.current == 1)
        #expect(probe.errorCodes == [.claimLost])
        #expect(loop.failed)
        #expect(store.completions.count == 1)
        if case .failed(let message) = store.completions.first?.outcome {
            #expect(message.contains("lost"))
        } else {
            Issue.record("expected a failed outcome, got \(String(describing: store.completions.first?.outcome))")
        }
    }

    @Test("a body that finishes ends its loss watch: nothing waits once the iteration is over")
    func lossWatchEndsWithTheBody() async throws {
        let clock = VirtualClock()
        let store = MemoryRunStore()
        let loop = try Loop(seconds: 5, count: 2, name: "job", store: store, clock: clock.loopClock) { _ in }
        try loop.start()
        await clock.advance(by: .seconds(10))
        #expect(await waitUntil { !loop.isRunning })
        #expect(store.waitingForLoss == 0)
        #expect(store.completions.count == 2)
    }

    @Test("catchUp outside 1…100000 is refused with a LoopError naming the value", arguments: [0, -3, 100_001])
    func badCatchUpLimit(limit: Int) throws {
        #expect(throws: LoopError.self) {
            _ = try Loop(seconds: 1, store: MemoryRunStore(), catchUp: .all(limit: limit)) { _ in }
        }
        do {
            _ = try Loop(seconds: 1, store: MemoryRunStore(), catchUp: .all(limit: limit)) { _ in }
        } catch let error as LoopError {
            #expect(error.code == .invalidOption)
            #expect(error.message.contains("\(limit)"))
        }
    }

    // MARK: Catch-up

    /// Each kind of schedule, with the slots it missed between the last recorded one and the
    /// start, computed by the pure Schedule API (the oracle).
    static let kinds: [(name: String, make: @Sendable (MemoryRunStore, CatchUp, LoopClock, @escaping Loop.Body) throws -> Loop)] = [
        ("interval", { store, catchUp, clock, body in try Loop(minutes: 15, name: "interval", store: store, catchUp: catchUp, clock: clock, body) }),
        ("times", { store, catchUp, clock, body in
            try Loop(times: [try TimeOfDay(hour: 9, timeZone: TimeZone(identifier: "UTC")!), try TimeOfDay(hour: 21, timeZone: TimeZone(identifier: "UTC")!)],
                name: "times", store: store, catchUp: catchUp, clock: clock, body)
        }),
        ("calendar", { store, catchUp, clock, body in try Loop(schedule: try .calendar("*-*-* *:00/20:00 UTC"), name: "calendar", store: store, catchUp: catchUp, clock: clock, body) }),
        ("cron", { store, catchUp, clock, body in try Loop(schedule: try .cron("30 */2 * * *", timeZone: TimeZone(identifier: "UTC")!), name: "cron", store: store, catchUp: catchUp, clock: clock, body) }),
    ]

    @Test("catch-up after downtime: none runs nothing, latest the latest missed slot once, all(limit:) the latest ones oldest first",
          arguments: 0..<4)
    func catchUp(kind index: Int) async throws {
        let kind = Self.kinds[index]
        // Down from 2025-12-31T00:00Z (a recorded slot of every kind) until the clock's origin.
        let lastRecorded = Self.origin.addingTimeInterval(-86_400)
        let oracle: Schedule = switch kind.name {
        case "interval": .custom("every 15 min") { date in
            // Compared as Dates: the Date just after a slot has the same timeIntervalSince1970.
            var quarter = (date.timeIntervalSince1970 / 900).rounded(.up)
            while Date(timeIntervalSince1970: quarter * 900) < date { quarter += 1 }
            return Date(timeIntervalSince1970: quarter * 900)
        }
        case "times": .times([try TimeOfDay(hour: 9, timeZone: TimeZone(identifier: "UTC")!), try TimeOfDay(hour: 21, timeZone: TimeZone(identifier: "UTC")!)])
        case "calendar": try .calendar("*-*-* *:00/20:00 UTC")
        default: try .cron("30 */2 * * *", timeZone: TimeZone(identifier: "UTC")!)
        }
        let missed = Array(oracle.fireDates(from: lastRecorded).drop { $0 <= lastRecorded }.prefix { $0 < Self.origin })
        #expect(missed.count >= 2)
        for (catchUp, expected) in [(CatchUp.none, [Date]()), (.latest, [missed.last!]), (.all(limit: 2), Array(missed.suffix(2))), (.all(limit: 1000), missed)] {
            let clock = VirtualClock()
            let store = MemoryRunStore(lastRun: RunRecord(scheduledAt: lastRecorded, finishedAt: lastRecorded, outcome: .succeeded, fencingToken: 7))
            let probe = StoreProbe(clock)
            let loop = try kind.make(store, catchUp, clock.loopClock) { probe.body($0) }
            try loop.start()
            await clock.advance(by: .zero)
            #expect(await waitUntil { probe.slots.count >= expected.count })
            let caughtUp = probe.slots.filter { ($0 ?? .distantFuture) < Self.origin }
            #expect(caughtUp == expected, "\(kind.name) \(catchUp)")
            loop.cancel()
            #expect(await waitUntil { !loop.isRunning })
        }
    }
}
