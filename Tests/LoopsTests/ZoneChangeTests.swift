import Foundation
import LoopsTestKit
import Testing

@testable import Loops

#if canImport(Glibc)
import Glibc
#endif

/// A change of the system's time zone while loops sleep: on the system engine through a link
/// of the test's own (inotify) and fault injection, on virtual time through
/// `VirtualClock.changeSystemTimeZone(to:)`. The machine's zone and clock are never touched.
@Suite("Zone changes: schedules in the system zone follow /etc/localtime", .serialized)
struct ZoneChangeTests {
    /// Long enough that nothing wakes by itself while a test looks at it.
    static let longDelay: Int64 = 60_000_000_000

    // MARK: - System engine

    @Test("renaming a new link over the old one wakes realtime sleepers with .clockStepped, and only them")
    func linkReplacementWakesRealtimeSleepers() async throws {
        let link = try ZoneLinkDirectory()
        try link.point(to: "Europe/Berlin")
        let engine = SystemEngine(localtimePath: link.localtimePath)
        let wall = Task { try await engine.sleep(until: engine.now(.realtime) + Self.longDelay, on: .realtime, waker: nil) }
        let elapsed = Task { try await engine.sleep(until: engine.now(.continuous) + Self.longDelay, on: .continuous, waker: nil) }
        defer {
            wall.cancel()
            elapsed.cancel()
        }
        try #require(await waitUntil { engine.sleeperCount(on: .realtime) == 1 && engine.sleeperCount(on: .continuous) == 1 })
        #expect(engine.isWatchingZone)

        // Another entry of the directory changing is no change of the zone.
        #expect(FileManager.default.createFile(atPath: link.directory + "/adjtime", contents: Data("0".utf8)))
        try await Task.sleep(for: .milliseconds(50))
        #expect(engine.sleeperCount(on: .realtime) == 1)
        #expect(engine.zoneChangeCount == 0)

        try link.point(to: "America/New_York")
        try #require(await waitUntil { engine.sleeperCount(on: .realtime) == 0 })
        #expect(try await wall.value == .clockStepped)
        #expect(engine.zoneChangeCount == 1)
        // Not a step of the wall clock, and elapsed time does not care.
        #expect(engine.wallClockStepCount == 0)
        #expect(engine.sleeperCount(on: .continuous) == 1)
    }

    @Test("unlinking and re-creating the link (ln -sf) wakes realtime sleepers too")
    func unlinkAndCreateWakesRealtimeSleepers() async throws {
        let link = try ZoneLinkDirectory()
        try link.point(to: "Europe/Berlin")
        let engine = SystemEngine(localtimePath: link.localtimePath)
        let wall = Task { try await engine.sleep(until: engine.now(.realtime) + Self.longDelay, on: .realtime, waker: nil) }
        defer { wall.cancel() }
        try #require(await waitUntil { engine.sleeperCount(on: .realtime) == 1 })
        try link.unlinkAndCreate(pointingTo: "Asia/Kolkata")
        try #require(await waitUntil { engine.sleeperCount(on: .realtime) == 0 })
        #expect(try await wall.value == .clockStepped)
        #expect(engine.zoneChangeCount >= 1)
    }

    @Test("a loop on cron 0 9 * * * in the system zone re-arms to 09:00 New York when the link moves there from Berlin")
    func cronLoopFollowsTheLink() async throws {
        let link = try ZoneLinkDirectory()
        try link.point(to: "Europe/Berlin")
        let engine = SystemEngine(localtimePath: link.localtimePath)
        let now = Date()
        let berlin = try #require(Self.nextNine(in: "Europe/Berlin", after: now))
        let newYork = try #require(Self.nextNine(in: "America/New_York", after: now))
        // Within two minutes of a 09:00 a run could come before the re-arm is seen; the
        // assertions below would then not be about the zone change.
        guard min(berlin, newYork).timeIntervalSince(now) > 120 else { return }

        let loop = try Loop(schedule: .cron("0 9 * * *"), clock: LoopClock(engine: engine, intervalClock: .continuous)) { _ in }
        // The loop's task inherits the task-local source: it reads the test's link.
        let task = try SystemTimeZone.$source.withValue(link.source) { try loop.start() }
        defer { loop.cancel() }
        // Asleep on the engine (which watches the link from the first wall-clock sleep on).
        try #require(
            await waitUntil { loop.nextIteration == berlin && engine.sleeperCount(on: .realtime) == 1 },
            "nextIteration \(String(describing: loop.nextIteration)), expected \(berlin)"
        )
        #expect(engine.isWatchingZone)

        try link.point(to: "America/New_York")
        #expect(await waitUntil { loop.nextIteration == newYork }, "nextIteration \(String(describing: loop.nextIteration)), expected \(newYork)")
        #expect(engine.zoneChangeCount >= 1)
        #expect(loop.currentLoop == 0)

        loop.cancel()
        await task.value
    }

    @Test("fault injection: a simulated zone change wakes the realtime sleepers of a loop, which re-arms in the new zone")
    func simulatedZoneChange() async throws {
        // A directory nobody writes to: only the injected change can wake the loop.
        let link = try ZoneLinkDirectory()
        let engine = SystemEngine(localtimePath: link.localtimePath)
        let simulated = SimulatedTimeZone(TimeZone(identifier: "Asia/Kolkata"))
        let now = Date()
        let kolkata = try #require(Self.nextNine(in: "Asia/Kolkata", after: now))
        let chatham = try #require(Self.nextNine(in: "Pacific/Chatham", after: now))
        guard min(kolkata, chatham).timeIntervalSince(now) > 120 else { return }

        let loop = try Loop(schedule: .calendar("*-*-* 09:00:00"), clock: LoopClock(engine: engine, intervalClock: .continuous)) { _ in }
        let task = try SystemTimeZone.$source.withValue(.simulated(simulated)) { try loop.start() }
        defer { loop.cancel() }
        try #require(await waitUntil { loop.nextIteration == kolkata && engine.sleeperCount(on: .realtime) == 1 })

        // Changing the zone alone is not seen while the loop sleeps: nothing tells it.
        simulated.zone = TimeZone(identifier: "Pacific/Chatham")
        try await Task.sleep(for: .milliseconds(30))
        #expect(loop.nextIteration == kolkata)

        try engine.simulateZoneChange()
        #expect(await waitUntil { loop.nextIteration == chatham })
        #expect(engine.zoneChangeCount == 1)
        #expect(engine.wallClockStepCount == 0)

        loop.cancel()
        await task.value
    }

    @Test("without a directory to watch, sleeping works as before and a simulated change still wakes")
    func noWatchableDirectory() async throws {
        let engine = SystemEngine(localtimePath: "/nonexistent-swift-loops-zone-test/localtime")
        let deadline = engine.now(.realtime) + 30_000_000
        #expect(try await engine.sleep(until: deadline, on: .realtime, waker: nil) == .deadlineReached)
        #expect(engine.now(.realtime) >= deadline)
        #expect(!engine.isWatchingZone)

        let wall = Task { try await engine.sleep(until: engine.now(.realtime) + Self.longDelay, on: .realtime, waker: nil) }
        defer { wall.cancel() }
        try #require(await waitUntil { engine.sleeperCount(on: .realtime) == 1 })
        try engine.simulateZoneChange()
        #expect(try await wall.value == .clockStepped)
    }

    @Test("an engine that goes away closes its inotify descriptor")
    func releasesWatchDescriptor() async throws {
        let link = try ZoneLinkDirectory()
        try link.point(to: "Europe/Berlin")
        let baseline = Self.openInotifyDescriptors()
        var engine: SystemEngine? = SystemEngine(localtimePath: link.localtimePath)
        _ = try await engine!.sleep(until: engine!.now(.realtime) + 1_000_000, on: .realtime, waker: nil)
        #expect(engine?.isWatchingZone == true)
        #expect(Self.openInotifyDescriptors() - baseline == 1)
        engine = nil
        #expect(await waitUntil { Self.openInotifyDescriptors() == baseline })
    }

    // MARK: - Virtual time

    /// 2026-03-02T00:10:00Z, a Monday; no DST change in Berlin or New York until the 8th.
    static let monday = Date(timeIntervalSince1970: 1_772_410_200)

    @Test("calendar 09:00 without a zone: 09:00 UTC, then 09:00 Berlin, then 09:00 New York; no run lost or doubled")
    func virtualZoneChanges() async throws {
        let clock = VirtualClock(wallTime: Self.monday)
        await clock.changeSystemTimeZone(to: try #require(TimeZone(identifier: "UTC")))
        let runs = LockedValue<[Date]>([])
        let loop = try Loop(schedule: .calendar("*-*-* 09:00:00"), clock: clock.loopClock) { _ in
            runs.withLock { $0.append(clock.now) }
        }
        try loop.start()
        await clock.advance(to: Self.date("2026-03-02T12:00:00Z"))
        #expect(runs.withLock { $0 } == [Self.date("2026-03-02T09:00:00Z")])

        // 13:00 in Berlin: today's 09:00 there has passed, the next is tomorrow's.
        await clock.changeSystemTimeZone(to: try #require(TimeZone(identifier: "Europe/Berlin")))
        #expect(clock.systemTimeZone?.identifier == "Europe/Berlin")
        #expect(loop.nextIteration == Self.date("2026-03-03T08:00:00Z"))
        await clock.advance(to: Self.date("2026-03-05T12:00:00Z"))

        // 07:00 in New York: today's 09:00 there is still to come.
        await clock.changeSystemTimeZone(to: try #require(TimeZone(identifier: "America/New_York")))
        #expect(loop.nextIteration == Self.date("2026-03-05T14:00:00Z"))
        await clock.advance(to: Self.date("2026-03-07T00:00:00Z"))
        loop.cancel()
        await clock.settle()

        let expected = [
            "2026-03-02T09:00:00Z",  // UTC
            "2026-03-03T08:00:00Z", "2026-03-04T08:00:00Z", "2026-03-05T08:00:00Z",  // Berlin (CET)
            "2026-03-05T14:00:00Z", "2026-03-06T14:00:00Z",  // New York (EST)
        ].map(Self.date)
        #expect(runs.withLock { $0 } == expected)
    }

    @Test("a change that moves today's 09:00 into the past runs it once, late (the missed-tick policy), never twice")
    func virtualChangeOverAPassedSlot() async throws {
        let clock = VirtualClock(wallTime: Self.monday)
        await clock.changeSystemTimeZone(to: try #require(TimeZone(identifier: "UTC")))
        let runs = LockedValue<[Date]>([])
        let loop = try Loop(schedule: .calendar("*-*-* 09:00:00"), clock: clock.loopClock) { _ in
            runs.withLock { $0.append(clock.now) }
        }
        try loop.start()
        // 08:30 UTC, no run yet today; in Berlin it is 09:30, after today's 09:00.
        await clock.advance(to: Self.date("2026-03-02T08:30:00Z"))
        #expect(runs.withLock { $0 }.isEmpty)
        await clock.changeSystemTimeZone(to: try #require(TimeZone(identifier: "Europe/Berlin")))
        #expect(runs.withLock { $0 } == [Self.date("2026-03-02T08:30:00Z")])
        #expect(loop.nextIteration == Self.date("2026-03-03T08:00:00Z"))
        await clock.advance(to: Self.date("2026-03-03T12:00:00Z"))
        loop.cancel()
        await clock.settle()
        #expect(runs.withLock { $0 } == [Self.date("2026-03-02T08:30:00Z"), Self.date("2026-03-03T08:00:00Z")])
    }

    @Test("schedules with their own zone and interval loops ignore a zone change")
    func virtualChangeLeavesZonedSchedulesAlone() async throws {
        let clock = VirtualClock(wallTime: Self.monday)
        await clock.changeSystemTimeZone(to: try #require(TimeZone(identifier: "UTC")))
        let zoned = try Loop(schedule: .calendar("*-*-* 09:00:00 UTC"), clock: clock.loopClock) { _ in }
        let interval = try Loop(hours: 1, clock: clock.loopClock) { _ in }
        try zoned.start()
        try interval.start()
        await clock.advance(to: Self.date("2026-03-02T10:30:00Z"))
        let zonedNext = zoned.nextIteration
        let intervalNext = interval.nextIteration
        await clock.changeSystemTimeZone(to: try #require(TimeZone(identifier: "Asia/Kolkata")))
        #expect(zoned.nextIteration == zonedNext)
        #expect(zonedNext == Self.date("2026-03-03T09:00:00Z"))
        #expect(interval.nextIteration == intervalNext)
        zoned.cancel()
        interval.cancel()
        await clock.settle()
    }

    // MARK: - Helpers

    static func date(_ iso: String) -> Date {
        try! Date(iso, strategy: .iso8601)
    }

    /// The first 09:00:00 in `zone` after `date`, by Foundation's calendar.
    static func nextNine(in zone: String, after date: Date) -> Date? {
        Calendar.zoned(zone).nextDate(after: date, matching: DateComponents(hour: 9, minute: 0, second: 0), matchingPolicy: .nextTime)
    }

    /// The number of inotify descriptors open in this process.
    static func openInotifyDescriptors() -> Int {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return names.filter {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")) == "anon_inode:inotify"
        }.count
    }
}
