import Foundation
@testable import Loops
import LoopsTestKit
import Testing

/// The cells of the bad-input matrix (Documentation/Reliability.md) that no other suite checks:
/// each bad value gets a `LoopError` with the right code and a message naming the value, or a
/// documented non-error answer (nil, an empty sequence, a clamped clock), never a trap.
@Suite("Bad input: the matrix of Documentation/Reliability.md")
struct BadInputTests {
    /// The `LoopError` that `make` throws; records an issue when it throws nothing or another type.
    private func loopError(_ make: () throws -> Any) -> LoopError? {
        do {
            let value = try make()
            Issue.record("no error; got \(value)")
        } catch let error as LoopError {
            #expect(error.description == error.message)
            return error
        } catch {
            Issue.record("unexpected error type \(type(of: error)): \(error)")
        }
        return nil
    }

    // MARK: Loop(seconds:minutes:hours:) and changeInterval(seconds:minutes:hours:)

    @Test("finite parts whose total is NaN (inf − inf) are named, not reported as too large")
    func totalThatIsNotANumber() throws {
        let error = try #require(loopError { try Loop(minutes: -1e308, hours: 1e308) { _ in } })
        #expect(error.code == .invalidInterval)
        #expect(
            error.message
                == "interval is not a number: seconds + 60·minutes + 3600·hours overflows (seconds: 0.0, minutes: -1e+308, hours: 1e+308)"
        )
        let infinite = try #require(loopError { try Loop(hours: 1e306) { _ in } })
        #expect(infinite.code == .invalidInterval)
        #expect(infinite.message.contains("got inf s (seconds: 0.0, minutes: 0.0, hours: 1e+306)"), "\(infinite.message)")
    }

    @Test("the largest interval is 9,223,372,036 s; below a nanosecond rounds; −0 and tiny negatives")
    func intervalBoundaries() throws {
        #expect(try Loop(seconds: 9_223_372_036) { _ in }.schedule == .every(.seconds(9_223_372_036)))
        let over = try #require(loopError { try Loop(seconds: 9_223_372_037) { _ in } })
        #expect(over.code == .invalidInterval)
        #expect(
            over.message
                == "interval must be at most 9223372036 s (about 292 years), got 9223372037.0 s (seconds: 9223372037.0, minutes: 0.0, hours: 0.0)"
        )
        let tinyNegative = try #require(loopError { try Loop(seconds: -1e-10) { _ in } })
        #expect(tinyNegative.code == .invalidInterval)
        #expect(tinyNegative.message.hasPrefix("interval must not be negative, got -1e-10 s"), "\(tinyNegative.message)")
        // Accepted: the interval is the total rounded to whole nanoseconds.
        #expect(try Loop(seconds: 1e-10) { _ in }.schedule == .every(.zero))
        #expect(try Loop(seconds: -0.0) { _ in }.schedule == .every(.zero))
        #expect(try Loop(seconds: -1, minutes: 1) { _ in }.schedule == .every(.seconds(59)))
    }

    @Test("changeInterval: each bad value gets the initializer's error, and the schedule is kept")
    func changeIntervalErrors() throws {
        let loop = try Loop(seconds: 5) { _ in }
        let cases: [(() throws -> Void, LoopError.Code, String)] = [
            ({ try loop.changeInterval(seconds: -10) }, .invalidInterval, "interval must not be negative, got -10.0 s"),
            ({ try loop.changeInterval(minutes: .nan) }, .invalidInterval, "minutes must be finite, got nan"),
            ({ try loop.changeInterval(hours: .infinity) }, .invalidInterval, "hours must be finite, got inf"),
            ({ try loop.changeInterval(hours: 1e15) }, .invalidInterval, "interval must be at most 9223372036 s"),
            ({ try loop.changeInterval(minutes: -1e308, hours: 1e308) }, .invalidInterval, "interval is not a number"),
            ({ try loop.changeInterval(times: []) }, .invalidTimeOfDay, "times must not be empty"),
            ({ try loop.changeSchedule(.every(.seconds(-1))) }, .invalidInterval, "interval must not be negative, got -1.0 seconds"),
            ({ try loop.changeSchedule(.every(.seconds(Int64.max))) }, .invalidInterval, "interval must be at most 9223372036 s"),
            ({ try loop.changeSchedule(.times([])) }, .invalidTimeOfDay, "times must not be empty"),
        ]
        for (change, code, prefix) in cases {
            let error = try #require(loopError { try change() })
            #expect(error.code == code, "\(error.message)")
            #expect(error.message.hasPrefix(prefix), "\(error.message)")
            #expect(loop.schedule == .every(.seconds(5)))
            #expect(loop.seconds == 5)
        }
    }

    // MARK: Loop(schedule:) and Schedule.every

    @Test("Schedule.every: a negative or too long Duration is refused when a loop is created")
    func scheduleEveryBounds() throws {
        let cases: [(Duration, String)] = [
            (.nanoseconds(-1), "interval must not be negative, got -1e-09 seconds"),
            (.seconds(Int64.min), "interval must not be negative, got -9.223372036854776e+18 seconds"),
            (.seconds(9_223_372_037), "interval must be at most 9223372036 s (about 292 years), got 9223372037.0 seconds"),
        ]
        for (interval, message) in cases {
            let error = try #require(loopError { try Loop(schedule: .every(interval)) { _ in } })
            #expect(error.code == .invalidInterval)
            #expect(error.message == message)
        }
        #expect(try Loop(schedule: .every(.zero)) { _ in }.schedule == .every(.zero))
    }

    @Test("count is checked by every initializer; Int.max is accepted")
    func countOnEveryInitializer() throws {
        let time = try TimeOfDay(hour: 9)
        let makers: [(Int) throws -> Loop] = [
            { try Loop(seconds: 1, count: $0) { _ in } },
            { try Loop(times: [time], count: $0) { _ in } },
            { try Loop(schedule: .cron("0 9 * * *", timeZone: .gmt), count: $0) { _ in } },
        ]
        for make in makers {
            for count in [0, -1, Int.min] {
                let error = try #require(loopError { try make(count) })
                #expect(error.code == .invalidCount)
                #expect(error.message == "count must be at least 1, got \(count)")
            }
            #expect(try make(Int.max).count == Int.max)
        }
    }

    // MARK: TimeOfDay

    @Test(
        "time-of-day components: negative, one past the end, leap second 60/61, Int.min/Int.max",
        arguments: [
            (0, 0, 61, 0, "second must be in 0...59, got 61"),
            (0, -1, 0, 0, "minute must be in 0...59, got -1"),
            (0, 0, -1, 0, "second must be in 0...59, got -1"),
            (0, 0, 0, -1, "nanosecond must be in 0...999999999, got -1"),
            (25, 0, 0, 0, "hour must be in 0...23, got 25"),
            (Int.max, 0, 0, 0, "hour must be in 0...23, got 9223372036854775807"),
            (0, 0, Int.min, 0, "second must be in 0...59, got -9223372036854775808"),
        ] as [(Int, Int, Int, Int, String)]
    )
    func timeOfDayOutOfRange(hour: Int, minute: Int, second: Int, nanosecond: Int, message: String) throws {
        let error = try #require(loopError {
            try TimeOfDay(hour: hour, minute: minute, second: second, nanosecond: nanosecond)
        })
        #expect(error.code == .invalidTimeOfDay)
        #expect(error.message == message)
    }

    @Test("a list of times made only of duplicates is one slot, not an error")
    func duplicateTimes() throws {
        let nine = try TimeOfDay(hour: 9)
        let loop = try Loop(times: [nine, nine, nine]) { _ in }
        #expect(loop.times == [nine])
    }

    // MARK: Schedule.calendar

    @Test(
        "calendar: NUL, garbage unicode, out-of-range fields, huge numbers, long input",
        arguments: [
            ("daily\u{0}", "unexpected \"daily\u{0}\""),
            ("\u{0}", "unexpected \"\u{0}\""),
            ("💥", "unexpected \"💥\""),
            ("\u{FEFF}daily", "unexpected \"\u{FEFF}daily\""),
            ("*-*-* 25:00", "hour 25 is out of range 0…23"),
            ("*-*-* 23:60", "minute 60 is out of range 0…59"),
            ("*-*-* 12:00:61", "second 61 is out of range"),
            ("*-*-00", "day 0 is out of range 1…31"),
            ("*-00-01", "month 0 is out of range 1…12"),
            ("9999999999999999999999-01-01", "9999999999999999999999 is too large"),
            ("*-*-* 00:00 Not/AZone", "Not/AZone"),
            (String(repeating: "1,", count: 2_000) + "1", "1,1,1"),
            (String(repeating: "*", count: 5_000), "***"),
        ]
    )
    func calendarRejects(expression: String, named: String) throws {
        let error = try #require(loopError { try Schedule.calendar(expression) })
        #expect(error.code == .invalidSchedule)
        #expect(error.message.hasPrefix("invalid calendar expression \""), "\(error.message.prefix(200))")
        #expect(error.message.contains(named), "\(error.message.prefix(200))")
    }

    @Test("calendar: duplicates are accepted; a date that never comes is accepted and never fires")
    func calendarAcceptsDuplicatesAndNeverDates() throws {
        let start = Date(timeIntervalSince1970: 1_767_225_600)
        let twice = try Schedule.calendar("Mon,Mon 12:00 UTC")
        #expect(twice.nextFire(onOrAfter: start) == (try Schedule.calendar("Mon 12:00 UTC")).nextFire(onOrAfter: start))
        #expect(try Schedule.calendar("*-02-30 UTC").nextFire(onOrAfter: start) == nil)
        #expect(Array(try Schedule.calendar("*-02-30 UTC").fireDates(from: start)).isEmpty)
    }

    // MARK: Schedule.cron

    @Test(
        "cron: NUL, garbage unicode, out-of-range fields, a huge step, blank input",
        arguments: [
            ("* * * * *\u{0}", "cron day-of-week field: '*\u{0}' is not a number or a name Sun-Sat"),
            ("\u{0}", "cron expression needs 5 fields (minute hour day-of-month month day-of-week), got 1 in '\u{0}'"),
            ("💥 * * * *", "cron minute field: '💥' is not a number"),
            ("60 * * * *", "cron minute field: 60 is out of range 0-59"),
            ("* 25 * * *", "cron hour field: 25 is out of range 0-23"),
            ("* * 32 * *", "cron day-of-month field: 32 is out of range 1-31"),
            ("* * * 0 *", "cron month field: 0 is out of range 1-12"),
            ("*/99999999999999999999 * * * *", "cron minute field: step 99999999999999999999 in '*/99999999999999999999' is out of range 1-60"),
            ("  ", "cron expression needs 5 fields (minute hour day-of-month month day-of-week), got 0 in '  '"),
        ]
    )
    func cronRejects(expression: String, message: String) throws {
        let error = try #require(loopError { try Schedule.cron(expression, timeZone: .gmt) })
        #expect(error.code == .invalidSchedule)
        #expect(error.message == message)
    }

    @Test("cron: duplicates are accepted; a day that never comes is accepted and never fires")
    func cronAcceptsDuplicatesAndNeverDates() throws {
        let start = Date(timeIntervalSince1970: 1_767_225_600)
        let twice = try Schedule.cron("5,5 * * * *", timeZone: .gmt)
        #expect(Array(twice.fireDates(from: start).prefix(2)) == [start + 300, start + 3900])
        let longList = try Schedule.cron(String(repeating: "1,", count: 10_000) + "1 * * * *", timeZone: .gmt)
        #expect(longList.nextFire(onOrAfter: start) == start + 60)
        #expect(try Schedule.cron("0 0 31 2 *", timeZone: .gmt).nextFire(onOrAfter: start) == nil)
    }

    // MARK: Schedule.nextFire(onOrAfter:) and fireDates(from:)

    @Test("a NaN or infinite date has no next instant, whatever the schedule; neither has a negative interval")
    func nonFiniteDatesAndNegativeIntervals() throws {
        let schedules: [Schedule] = [
            .every(.seconds(5)), .every(.zero), .times([try TimeOfDay(hour: 9)]), .times([]),
            try .calendar("daily UTC"), try .cron("0 0 * * *", timeZone: .gmt),
        ]
        let dates = [
            Date(timeIntervalSinceReferenceDate: .nan), Date(timeIntervalSinceReferenceDate: .infinity),
            Date(timeIntervalSinceReferenceDate: -.infinity),
        ]
        for schedule in schedules {
            for date in dates {
                #expect(schedule.nextFire(onOrAfter: date) == nil, "\(schedule) from \(date.timeIntervalSinceReferenceDate)")
                #expect(Array(schedule.fireDates(from: date).prefix(3)).isEmpty, "\(schedule)")
            }
        }
        let start = Date(timeIntervalSince1970: 0)
        #expect(Schedule.every(.seconds(-5)).nextFire(onOrAfter: start) == nil)
        #expect(Array(Schedule.every(.seconds(-5)).fireDates(from: start).prefix(3)).isEmpty)
        // Interval 0 repeats the start, as a loop with interval 0 runs back to back.
        #expect(Array(Schedule.every(.zero).fireDates(from: start).prefix(3)) == [start, start, start])
        // Far but finite dates: an answer or nil, never a trap.
        #expect(Schedule.every(.seconds(5)).nextFire(onOrAfter: .distantPast) == .distantPast)
        #expect(try Schedule.calendar("daily UTC").nextFire(onOrAfter: .distantPast) == start)
        #expect(try Schedule.calendar("daily UTC").nextFire(onOrAfter: .distantFuture) == nil)
        #expect(Schedule.times([try TimeOfDay(hour: 9)]).nextFire(onOrAfter: Date(timeIntervalSinceReferenceDate: -1e300)) == nil)
    }

    // MARK: Loop state

    @Test("start() or run() on a running loop: alreadyRunning with a message that says what to do")
    func alreadyRunning() async throws {
        let clock = VirtualClock()
        let loop = try Loop(seconds: 1, clock: clock.loopClock) { _ in }
        try loop.start()
        let started = try #require(loopError { try loop.start() })
        #expect(started.code == .alreadyRunning)
        #expect(started.message == "the loop is already running; call stop() or cancel() first, or restart()")
        do {
            try await loop.run()
            Issue.record("run() on a running loop returned")
        } catch let error as LoopError {
            #expect(error == started)
        }
        loop.cancel()
        await clock.settle()
    }

    /// Was a trap: `nextIteration` added the remaining nanoseconds to the wall clock's, which
    /// overflows for an interval that ends after 2262 (`loops run --every 9000000000s` died on
    /// its first run).
    @Test("nextIteration of an interval that ends after the year 2262 is a date, not a trap")
    func nextIterationBeyond2262() async throws {
        let clock = VirtualClock()
        let loop = try Loop(seconds: 9_000_000_000, clock: clock.loopClock) { _ in }
        try loop.start()
        await clock.settle()
        let next = try #require(loop.nextIteration)
        #expect(abs(next.timeIntervalSince(clock.now) - 9_000_000_000) < 1)
        loop.cancel()
        await clock.settle()
    }
}

/// VirtualClock is test tooling, but a value a test passes never traps it: simulated time is
/// clamped to what Int64 nanoseconds hold. Each of these trapped or wrapped around before.
@Suite("Bad input: VirtualClock clamps instead of trapping")
struct VirtualClockBadInputTests {
    private static let limit2262 = Date(timeIntervalSince1970: Double(Int64.max) / 1e9)
    private static let limit1677 = Date(timeIntervalSince1970: Double(Int64.min) / 1e9)

    @Test("a wall time that is NaN, infinite or beyond 1677…2262 is clamped; a negative boot time is zero")
    func initializer() {
        #expect(VirtualClock(wallTime: Date(timeIntervalSince1970: .nan)).now == Date(timeIntervalSince1970: 0))
        #expect(VirtualClock(wallTime: .distantFuture).now == Self.limit2262)
        #expect(VirtualClock(wallTime: Date(timeIntervalSince1970: .infinity)).now == Self.limit2262)
        // Wall time is the boot time (1000 s) plus an origin, and the origin is what clamps.
        #expect(VirtualClock(wallTime: .distantPast).now == Self.limit1677 + 1000)
        let negativeBoot = VirtualClock(bootTime: .seconds(-5))
        #expect(negativeBoot.uptime == .zero)
        #expect(negativeBoot.now == Date(timeIntervalSince1970: 1_767_225_600))
    }

    @Test("advance: a negative duration does nothing; a huge one saturates; NaN and far dates are clamped")
    func advance() async {
        let clock = VirtualClock()
        let start = clock.now
        await clock.advance(by: .seconds(-5))
        #expect(clock.now == start && clock.uptime == .seconds(1000))
        await clock.advance(to: Date(timeIntervalSince1970: .nan))
        #expect(clock.now == start)
        await clock.advance(to: .distantFuture)
        #expect(clock.now == Self.limit2262)
        let huge = VirtualClock()
        await huge.advance(by: .seconds(Int64.max))
        #expect(huge.uptime == .nanoseconds(Int64.max))
        #expect(huge.now == Self.limit2262)
        // Already at the end of time: further advances and steps stay there.
        await huge.advance(by: .seconds(Int64.max))
        #expect(huge.uptime == .nanoseconds(Int64.max))
    }

    @Test("stepWallClock and suspend by huge amounts saturate; elapsed time is unaffected by steps")
    func stepAndSuspend() async {
        let clock = VirtualClock()
        await clock.stepWallClock(by: .seconds(Int64.max))
        #expect(clock.now == Self.limit2262)
        #expect(clock.uptime == .seconds(1000))
        await clock.stepWallClock(by: .seconds(Int64.min))
        await clock.stepWallClock(by: .seconds(Int64.min))
        #expect(clock.now == Self.limit1677 + 1000)
        let suspended = VirtualClock()
        await suspended.suspend(for: .seconds(Int64.max))
        #expect(suspended.uptime == .nanoseconds(Int64.max))
        await suspended.suspend(for: .seconds(-5))
        #expect(suspended.uptime == .nanoseconds(Int64.max))
    }

    @Test("a loop with a 100-year interval runs through a huge advance at each slot")
    func loopThroughHugeAdvance() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let century: Double = 100 * 365 * 86_400
        let loop = try Loop(seconds: century, clock: clock.loopClock) { _ in log.record("body") }
        try loop.start()
        await clock.advance(by: .seconds(Int64.max))
        #expect(log.events.count == 3)  // 0, 100 and 200 years: 292 years of Int64 nanoseconds
        #expect(loop.nextIteration != nil)
        loop.cancel()
        await clock.settle()
    }

    /// Was a wrap-around: the deadline overflowed to a negative time, so the sleep returned at once.
    @Test("sleep(for:) a huge duration sleeps until cancelled")
    func hugeSleep() async throws {
        let clock = VirtualClock()
        let woke = LockedValue(false)
        let sleeper = Task {
            try await clock.sleep(for: .seconds(Int64.max))
            woke.withLock { $0 = true }
        }
        for _ in 0..<20 {
            await clock.advance(by: .seconds(3600))
            await Task.yield()
        }
        #expect(woke.withLock { $0 } == false)
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        #expect(woke.withLock { $0 } == false)
    }
}
