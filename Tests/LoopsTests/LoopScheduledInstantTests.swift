import Foundation
import Loops
import LoopsTestKit
import Testing

/// `Loop.scheduledInstant`: the slot the iteration in progress runs for (what `loops run` gives
/// its command as LOOPS_SCHEDULED_AT).
@Suite("Loop.scheduledInstant")
struct LoopScheduledInstantTests {
    @Test func anIntervalLoopsSlotsAreTheStartThenTheGrid() async throws {
        let clock = VirtualClock()
        let start = clock.now
        let seen = LockedValue<[Date?]>([])
        let loop = try Loop(seconds: 5, count: 3, clock: clock.loopClock) { loop in
            seen.withLock { $0.append(loop.scheduledInstant) }
            // Work that makes the run late does not move the slot it reports.
            try await clock.sleep(for: .seconds(1))
            seen.withLock { $0.append(loop.scheduledInstant) }
        }
        #expect(loop.scheduledInstant == nil)
        try loop.start()
        await clock.advance(by: .seconds(20))
        let slots = [start, start, start + 5, start + 5, start + 10, start + 10]
        #expect(seen.withLock { $0 } == slots)
        #expect(loop.scheduledInstant == nil, "nil once the run has ended")
    }

    @Test func aRandomizedDelayLeavesTheSlotAlone() async throws {
        let clock = VirtualClock()
        let start = clock.now
        let seen = LockedValue<[(slot: Date?, now: Date)]>([])
        let loop = try Loop(seconds: 10, count: 2, randomizedDelay: .upTo(.seconds(4)), clock: clock.loopClock) { loop in
            seen.withLock { $0.append((loop.scheduledInstant, clock.now)) }
        }
        loop.setRandomDelay { _ in 3_000_000_000 }
        try loop.start()
        await clock.advance(by: .seconds(30))
        let runs = seen.withLock { $0 }
        try #require(runs.count == 2)
        #expect(runs[1].slot == start + 10)
        #expect(runs[1].now == start + 13, "the run waited for its delay")
    }

    @Test func aWallClockLoopsSlotIsItsTime() async throws {
        let clock = VirtualClock()
        let seen = LockedValue<[Date?]>([])
        let loop = try Loop(schedule: try .cron("*/15 * * * *", timeZone: TimeZone(identifier: "UTC")!), count: 2, clock: clock.loopClock) { loop in
            seen.withLock { $0.append(loop.scheduledInstant) }
        }
        try loop.start()
        await clock.advance(by: .seconds(40 * 60))
        let slots = seen.withLock { $0 }.compactMap { $0?.timeIntervalSince1970 }
        try #require(slots.count == 2)
        #expect(slots.allSatisfy { $0.truncatingRemainder(dividingBy: 900) == 0 }, "\(slots)")
        #expect(slots[1] - slots[0] == 900)
    }
}
