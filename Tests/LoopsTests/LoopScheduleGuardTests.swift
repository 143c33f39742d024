import Foundation
import Logging
import Loops
import LoopsTestKit
import Testing

@Suite("A schedule that gives an instant not after the last scheduled one: skipped, logged once")
struct LoopScheduleGuardTests {
    /// 2026-03-02T00:00:00Z.
    static let midnight = Date(timeIntervalSince1970: 1_772_409_600)
    /// 00:10, when every test starts its loop.
    static let start = at(0, 10)

    /// A `count` no test reaches: a loop that ran a rejected instant anyway would spin on it at
    /// once; the count ends it, so the test fails on the runs instead of hanging.
    static let runaway = 20

    static func at(_ hour: Int, _ minute: Int = 0) -> Date {
        midnight.addingTimeInterval(Double(hour * 3600 + minute * 60))
    }

    /// The first whole hour at or after `date`: what a correct hourly schedule answers. (It
    /// reads `timeIntervalSinceReferenceDate`, as `Date` stores it: `timeIntervalSince1970`
    /// loses the smallest step past an hour, and the schedule would answer the same hour again.)
    static func hourly(onOrAfter date: Date) -> Date {
        let seconds = date.timeIntervalSinceReferenceDate
        let hour = (seconds / 3600).rounded(.down) * 3600
        return Date(timeIntervalSinceReferenceDate: hour < seconds ? hour + 3600 : hour)
    }

    /// Records the wall time of each body.
    final class Runs: Sendable {
        private let dates = LockedValue<[Date]>([])
        func record(_ date: Date) { dates.withLock { $0.append(date) } }
        var all: [Date] { dates.withLock { $0 } }
    }

    private func errors(_ log: CapturedLog) -> [CapturedLog.Entry] {
        log.entries.filter { $0.level >= .error }
    }

    @Test("the same instant given twice runs once; one .error line names it; later slots still run")
    func sameInstantTwice() async throws {
        // Hourly, but asked for the first instant after 01:00 it answers 01:00 again, until 01:30
        // (as a schedule that rounds to the nearest second or hour instead of up would).
        let schedule = Schedule.custom("rounds down after 01:00") { date in
            if date > Self.at(1), date < Self.at(1, 30) { return Self.at(1) }
            return Self.hourly(onOrAfter: date)
        }
        let clock = VirtualClock(wallTime: Self.start)
        let runs = Runs()
        let log = CapturedLog()
        let loop = try Loop(schedule: schedule, count: Self.runaway, clock: clock.loopClock, logger: log.logger()) { _ in
            runs.record(clock.now)
        }
        try loop.start()
        await clock.settle()
        #expect(loop.nextIteration == Self.at(1))

        await clock.advance(to: Self.at(1, 5))
        #expect(runs.all == [Self.at(1)])
        #expect(loop.nextIteration == Self.at(2), "the repeated 01:00 is never shown as the next iteration")

        await clock.advance(to: Self.at(3, 30))
        #expect(runs.all == [Self.at(1), Self.at(2), Self.at(3)])
        let errors = errors(log)
        #expect(errors.count == 1)
        #expect(errors.first?.metadata["instant"] == "2026-03-02T01:00:00.000Z")
        #expect(errors.first?.metadata["after"] == "2026-03-02T01:00:00.000Z")
        #expect(errors.first?.metadata["next"] == "2026-03-02T02:00:00.000Z")
        #expect(errors.first?.metadata["schedule"] == "custom rounds down after 01:00")
        #expect(log.entries.filter { $0.level > .debug && $0.level < .error }.isEmpty)
        #expect(loop.isRunning)
        loop.cancel()
        await clock.settle()
    }

    @Test("a schedule that goes back an hour: nothing runs at the earlier instant, later valid instants run")
    func backwardsByAnHour() async throws {
        // Hourly, but where 03:00 is due it answers 01:00: an hour before the last one (02:00).
        let schedule = Schedule.custom("back an hour at 03:00") { date in
            let next = Self.hourly(onOrAfter: date)
            return next == Self.at(3) ? Self.at(1) : next
        }
        let clock = VirtualClock(wallTime: Self.start)
        let runs = Runs()
        let log = CapturedLog()
        let loop = try Loop(schedule: schedule, count: Self.runaway, clock: clock.loopClock, logger: log.logger()) { _ in
            runs.record(clock.now)
        }
        try loop.start()
        await clock.advance(to: Self.at(0, 30))
        #expect(errors(log).isEmpty, "the schedule behaved so far")
        await clock.advance(to: Self.at(1, 30))
        #expect(runs.all == [Self.at(1)])
        #expect(loop.nextIteration == Self.at(2))
        // The loop looks one instant ahead (to notice a wake that came after the following slot
        // too): asking for the instant after 02:00 already found the backwards one.
        #expect(errors(log).count == 1)

        await clock.advance(to: Self.at(2, 30))
        #expect(runs.all == [Self.at(1), Self.at(2)])
        // The schedule never gave 03:00; the next instant it gives after 02:00 is 04:00.
        #expect(loop.nextIteration == Self.at(4), "01:00, the backwards instant, is never shown")

        await clock.advance(to: Self.at(5, 30))
        #expect(runs.all == [Self.at(1), Self.at(2), Self.at(4), Self.at(5)])
        let errors = errors(log)
        #expect(errors.count == 1)
        #expect(errors.first?.metadata["instant"] == "2026-03-02T01:00:00.000Z")
        #expect(errors.first?.metadata["after"] == "2026-03-02T02:00:00.000Z")
        #expect(errors.first?.metadata["next"] == "2026-03-02T04:00:00.000Z")
        #expect(errors.first?.metadata["schedule"] == "custom back an hour at 03:00")
        loop.cancel()
        await clock.settle()
    }

    @Test("a schedule that only gives past instants after the first: the loop ends through afterLoop, one .error line")
    func onlyPastInstantsEndTheLoop() async throws {
        // 01:00 first; asked after it, ever earlier instants: 00:00, then 23:00 the day before…
        let questions = Counter()
        let schedule = Schedule.custom("only the past after 01:00") { date in
            _ = questions.increment()
            let first = Self.at(1)
            guard date > first else { return first }
            let hoursLater = (date.timeIntervalSince(first) / 3600).rounded(.down)
            return first.addingTimeInterval(-3600 * (1 + hoursLater))
        }
        let clock = VirtualClock(wallTime: Self.start)
        let runs = Runs()
        let log = CapturedLog()
        let afterLoop = Counter()
        let loop = try Loop(schedule: schedule, count: Self.runaway, clock: clock.loopClock, logger: log.logger()) { _ in
            runs.record(clock.now)
        }
        loop.afterLoop { _ in _ = afterLoop.increment() }
        try loop.start()
        await clock.settle()
        #expect(loop.nextIteration == Self.at(1))

        await clock.advance(to: Self.at(4))
        #expect(runs.all == [Self.at(1)])
        #expect(afterLoop.current == 1)
        #expect(!loop.isRunning)
        #expect(!loop.failed)
        #expect(loop.currentLoop == 1)
        #expect(loop.nextIteration == nil)
        let errors = errors(log)
        #expect(errors.count == 1)
        #expect(errors.first?.message.contains("not after the last scheduled one") == true)
        #expect(errors.first?.metadata["instant"] == "2026-03-02T00:00:00.000Z")
        #expect(errors.first?.metadata["after"] == "2026-03-02T01:00:00.000Z")
        #expect(errors.first?.metadata["next"] == "none: the schedule is treated as ended")
        // The schedule is asked again a bounded number of times, not until it behaves.
        #expect(questions.current < 200)
    }

    @Test("a schedule that repeats one bad instant forever: one .error line, the loop ends")
    func sameBadInstantForever() async throws {
        let questions = Counter()
        let schedule = Schedule.custom("stuck at 01:00") { _ in
            _ = questions.increment()
            return Self.at(1)
        }
        let clock = VirtualClock(wallTime: Self.start)
        let runs = Runs()
        let log = CapturedLog()
        let loop = try Loop(schedule: schedule, count: Self.runaway, clock: clock.loopClock, logger: log.logger()) { _ in
            runs.record(clock.now)
        }
        let task = try loop.start()
        await clock.advance(to: Self.at(2))
        await task.value
        #expect(!loop.isRunning)
        #expect(!loop.failed)
        #expect(runs.all == [Self.at(1)])
        #expect(errors(log).count == 1)
        #expect(errors(log).first?.metadata["instant"] == "2026-03-02T01:00:00.000Z")
        #expect(questions.current < 200)
    }

    @Test("overrun with .burst: a missed slot after which the schedule repeats itself is not run twice", .timeLimit(.minutes(1)))
    func burstNeverRepeatsAnInstant() async throws {
        // Hourly, but asked after 02:00 it answers 02:00 again until 02:30.
        let schedule = Schedule.custom("repeats 02:00") { date in
            if date > Self.at(2), date < Self.at(2, 30) { return Self.at(2) }
            return Self.hourly(onOrAfter: date)
        }
        let clock = VirtualClock(wallTime: Self.start)
        let runs = Runs()
        let log = CapturedLog()
        let loop = try Loop(schedule: schedule, count: Self.runaway, missedTicks: .burst, clock: clock.loopClock, logger: log.logger()) { loop in
            runs.record(clock.now)
            // The 01:00 body runs until 03:10: 02:00 and 03:00 are missed.
            if loop.currentLoop == 0 { try await clock.sleep(for: .seconds(130 * 60)) }
        }
        try loop.start()
        await clock.advance(to: Self.at(3, 30))
        // .burst runs each missed slot once, at once: 02:00 and 03:00, never 02:00 twice.
        #expect(runs.all == [Self.at(1), Self.at(3, 10), Self.at(3, 10)])
        #expect(loop.nextIteration == Self.at(4))
        #expect(errors(log).count == 1)
        #expect(errors(log).first?.metadata["instant"] == "2026-03-02T02:00:00.000Z")
        loop.cancel()
        await clock.settle()
    }
}
