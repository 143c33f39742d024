import Foundation
import Loops
import LoopsTestKit
import Testing

@Suite("Wall-clock schedules on virtual time: overrun, clock steps, years of runs")
struct LoopWallClockTests {
    /// 2026-03-02T00:10:00Z, a Monday.
    static let start = Date(timeIntervalSince1970: 1_772_410_200)

    /// Records the wall time of each body as `HH:MM` (UTC) or a full ISO date.
    final class WallLog: Sendable {
        private let dates = LockedValue<[Date]>([])
        let clock: VirtualClock
        init(_ clock: VirtualClock) { self.clock = clock }
        func record() { dates.withLock { $0.append(clock.now) } }
        var all: [Date] { dates.withLock { $0 } }
        var hoursAndMinutes: [String] {
            all.map { date in
                let components = Calendar.utc.dateComponents([.hour, .minute], from: date)
                return String(format: "%02d:%02d", components.hour!, components.minute!)
            }
        }
    }

    private func hourlyLoop(_ clock: VirtualClock, _ log: WallLog, policy: MissedTickPolicy? = nil, bodyTime: Duration = .zero) throws -> Loop {
        try Loop(schedule: .calendar("*-*-* *:00:00 UTC"), missedTicks: policy, clock: clock.loopClock) { _ in
            log.record()
            if bodyTime > .zero { try await clock.sleep(for: bodyTime) }
        }
    }

    @Test("the first fire is the earliest instant at or after the start; nextIteration shows it")
    func firstFire() async throws {
        let clock = VirtualClock(wallTime: Self.start)
        let log = WallLog(clock)
        let loop = try hourlyLoop(clock, log)
        try loop.start()
        await clock.settle()
        #expect(log.all.isEmpty)
        #expect(loop.nextIteration == Self.start.addingTimeInterval(50 * 60))
        await clock.advance(by: .seconds(3 * 3600))
        #expect(log.hoursAndMinutes == ["01:00", "02:00", "03:00"])
        loop.cancel()
        await clock.settle()

        // Started exactly on a slot: that slot fires at once.
        let onSlot = VirtualClock(wallTime: Self.start.addingTimeInterval(50 * 60))
        let onSlotLog = WallLog(onSlot)
        let onSlotLoop = try hourlyLoop(onSlot, onSlotLog)
        try onSlotLoop.start()
        await onSlot.advance(by: .seconds(3600))
        #expect(onSlotLog.hoursAndMinutes == ["01:00", "02:00"])
        onSlotLoop.cancel()
        await onSlot.settle()
    }

    @Test("a backward step never re-runs an instant that already fired")
    func backwardStep() async throws {
        let clock = VirtualClock(wallTime: Self.start)
        let log = WallLog(clock)
        let loop = try hourlyLoop(clock, log)
        try loop.start()
        await clock.advance(by: .seconds(80 * 60))  // 01:30, after the 01:00 run
        await clock.stepWallClock(by: .seconds(-3600))  // the wall clock reads 00:30 again
        #expect(log.hoursAndMinutes == ["01:00"])
        await clock.advance(by: .seconds(3600))  // wall 01:30: 01:00 must not run twice
        #expect(log.hoursAndMinutes == ["01:00"])
        #expect(loop.nextIteration.map { Calendar.utc.component(.hour, from: $0) } == 2)
        await clock.advance(by: .seconds(1800))  // wall 02:00
        #expect(log.hoursAndMinutes == ["01:00", "02:00"])
        loop.cancel()
        await clock.settle()
    }

    @Test("a forward step is an overrun: .skip (the default) runs once at once, then the next slot after now")
    func forwardStepSkip() async throws {
        let clock = VirtualClock(wallTime: Self.start)
        let log = WallLog(clock)
        let loop = try hourlyLoop(clock, log)
        try loop.start()
        await clock.advance(by: .seconds(80 * 60))  // 01:30
        await clock.stepWallClock(by: .seconds(5 * 3600))  // 06:30: 02:00…06:00 were missed
        #expect(log.hoursAndMinutes == ["01:00", "06:30"])
        await clock.advance(by: .seconds(1800))
        #expect(log.hoursAndMinutes == ["01:00", "06:30", "07:00"])
        loop.cancel()
        await clock.settle()
    }

    @Test("a forward step with .burst runs every missed slot")
    func forwardStepBurst() async throws {
        let clock = VirtualClock(wallTime: Self.start)
        let log = WallLog(clock)
        let loop = try hourlyLoop(clock, log, policy: .burst)
        try loop.start()
        await clock.advance(by: .seconds(80 * 60))
        await clock.stepWallClock(by: .seconds(5 * 3600))
        #expect(log.hoursAndMinutes == ["01:00", "06:30", "06:30", "06:30", "06:30", "06:30"])
        await clock.advance(by: .seconds(1800))
        #expect(log.all.count == 7)
        loop.cancel()
        await clock.settle()
    }

    @Test("a body longer than the gap between slots: .skip runs once late, then the next slot after now")
    func bodyOverrun() async throws {
        let clock = VirtualClock(wallTime: Self.start)
        let log = WallLog(clock)
        let loop = try hourlyLoop(clock, log, bodyTime: .seconds(90 * 60))
        try loop.start()
        await clock.advance(by: .seconds(5 * 3600 + 600))  // until 05:20
        // 01:00 runs until 02:30; 02:00 is late → runs at 02:30 until 04:00; 03:00 passed → at 04:00 …
        #expect(log.hoursAndMinutes == ["01:00", "02:30", "04:00"])
        loop.cancel()
        await clock.settle()
    }

    @Test("a suspend across several slots is an overrun, not a burst (with .skip)")
    func suspendAcrossSlots() async throws {
        let clock = VirtualClock(wallTime: Self.start)
        let log = WallLog(clock)
        let loop = try hourlyLoop(clock, log)
        try loop.start()
        await clock.advance(by: .seconds(3600))  // 01:10
        await clock.suspend(for: .seconds(3 * 3600))  // resumes at 04:10
        #expect(log.hoursAndMinutes == ["01:00", "04:10"])
        await clock.advance(by: .seconds(50 * 60))
        #expect(log.hoursAndMinutes == ["01:00", "04:10", "05:00"])
        loop.cancel()
        await clock.settle()
    }

    @Test("changeInterval from an interval to times of day: the next slot after now")
    func changeToWallSchedule() async throws {
        let clock = VirtualClock(wallTime: Self.start)
        let log = WallLog(clock)
        let loop = try Loop(seconds: 7 * 60, clock: clock.loopClock) { _ in log.record() }
        try loop.start()
        await clock.advance(by: .seconds(60))  // 00:11
        try loop.changeSchedule(.calendar("*-*-* *:30:00 UTC"))
        #expect(loop.seconds == nil)
        await clock.advance(by: .seconds(3600))  // 01:11
        #expect(log.hoursAndMinutes == ["00:10", "00:30"])
        try loop.changeInterval(seconds: 600)  // back to relative: the last slot (00:30) + 10 min = 00:40, passed
        await clock.advance(by: .seconds(20 * 60))
        #expect(log.hoursAndMinutes == ["00:10", "00:30", "01:11", "01:21", "01:31"])
        loop.cancel()
        await clock.settle()
    }

    @Test("a schedule that ends ends the loop through afterLoop")
    func scheduleEnds() async throws {
        let clock = VirtualClock(wallTime: Self.start)
        let log = WallLog(clock)
        let loop = try Loop(schedule: .calendar("2026-03-02 01,02:00:00 UTC"), clock: clock.loopClock) { _ in log.record() }
        let ended = LockedValue(false)
        loop.afterLoop { _ in ended.withLock { $0 = true } }
        try loop.start()
        await clock.advance(by: .seconds(5 * 3600))
        #expect(log.hoursAndMinutes == ["01:00", "02:00"])
        #expect(ended.withLock { $0 })
        #expect(loop.isRunning == false)
    }

    @Test("three simulated years of a Berlin 02:30 calendar: one run a day, none on spring-forward days")
    func yearsOfCalendarRuns() async throws {
        let clock = VirtualClock(wallTime: Date(timeIntervalSince1970: 1_767_225_600))  // 2026-01-01
        let log = WallLog(clock)
        let loop = try Loop(schedule: .calendar("*-*-* 02:30:00 Europe/Berlin"), clock: clock.loopClock) { _ in log.record() }
        try loop.start()
        await clock.advance(by: .seconds(3 * 365 * 86_400))
        loop.cancel()
        await clock.settle()
        let berlin = Calendar.zoned("Europe/Berlin")
        let days = log.all.map { berlin.dateComponents([.year, .month, .day], from: $0) }
        #expect(Set(days).count == days.count, "a day ran twice")
        for date in log.all {
            let local = berlin.dateComponents([.hour, .minute], from: date)
            #expect(local.hour == 2 && local.minute == 30)
        }
        // 2026-01-01 … 2028-12-30: 1095 days, minus the three spring-forward days (no 02:30 there).
        #expect(days.count == 1095 - 3)
        for springForward in ["2026-03-29", "2027-03-28", "2028-03-26"] {
            let parts = springForward.split(separator: "-").map { Int($0)! }
            #expect(!days.contains(DateComponents(year: parts[0], month: parts[1], day: parts[2])))
        }
    }

    @Test("three simulated years of times: [02:30 Berlin, 12:00 Kolkata, 23:45 New York]: every slot every day")
    func yearsOfMixedZoneTimes() async throws {
        let clock = VirtualClock(wallTime: Date(timeIntervalSince1970: 1_767_225_600))
        let log = WallLog(clock)
        let times = [
            try TimeOfDay(hour: 2, minute: 30, timeZone: TimeZone(identifier: "Europe/Berlin")),
            try TimeOfDay(hour: 12, timeZone: TimeZone(identifier: "Asia/Kolkata")),
            try TimeOfDay(hour: 23, minute: 45, timeZone: TimeZone(identifier: "America/New_York")),
            try TimeOfDay(hour: 12, timeZone: TimeZone(identifier: "Asia/Kolkata")),  // a duplicate
        ]
        let loop = try Loop(times: times, clock: clock.loopClock) { _ in log.record() }
        #expect(loop.times?.count == 3)
        try loop.start()
        await clock.advance(by: .seconds(3 * 365 * 86_400))
        loop.cancel()
        await clock.settle()
        let fires = log.all
        #expect(Set(fires).count == fires.count, "an instant ran twice")
        #expect(fires == fires.sorted())
        for (zone, hour, minute) in [("Europe/Berlin", 2, 30), ("Asia/Kolkata", 12, 0), ("America/New_York", 23, 45)] {
            let calendar = Calendar.zoned(zone)
            let matching = fires.filter {
                let local = calendar.dateComponents([.hour, .minute], from: $0)
                // Gap rule: Berlin's 02:30 on spring-forward days fires at 03:30 CEST.
                return (local.hour == hour && local.minute == minute)
                    || (zone == "Europe/Berlin" && local.hour == 3 && local.minute == 30)
            }
            let days = Set(matching.map { calendar.dateComponents([.year, .month, .day], from: $0) })
            #expect(days.count == matching.count, "\(zone): a day ran twice")
            #expect(matching.count >= 1094, "\(zone): only \(matching.count) runs in three years")
        }
    }
}

extension Calendar {
    static var utc: Calendar { zoned("UTC") }

    static func zoned(_ identifier: String) -> Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: identifier)!
        return calendar
    }
}
