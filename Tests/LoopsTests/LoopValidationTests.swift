import Foundation
import Loops
import Testing

@Suite("Bad input gets a LoopError that names the value")
struct LoopValidationTests {
    private func error(_ make: () throws -> Loop) -> LoopError? {
        do {
            _ = try make()
            return nil
        } catch let error as LoopError {
            return error
        } catch {
            Issue.record("unexpected error type \(type(of: error))")
            return nil
        }
    }

    @Test(
        "invalid relative intervals",
        arguments: [
            (-1.0, 0.0, 0.0, "must not be negative, got -1.0 s"),
            (0.0, -2.0, 0.0, "must not be negative, got -120.0 s"),
            (.nan, 0.0, 0.0, "seconds must be finite, got nan"),
            (0.0, .infinity, 0.0, "minutes must be finite, got inf"),
            (0.0, 0.0, -.infinity, "hours must be finite, got -inf"),
            (1e300, 0.0, 0.0, "interval must be at most"),
            (0.0, 0.0, 1e15, "got 3.6e+18 s"),
        ] as [(Double, Double, Double, String)]
    )
    func invalidIntervals(seconds: Double, minutes: Double, hours: Double, fragment: String) throws {
        let error = try #require(error { try Loop(seconds: seconds, minutes: minutes, hours: hours) { _ in } })
        #expect(error.code == .invalidInterval)
        #expect(error.message.contains(fragment), "\(error.message)")
        #expect(error.description == error.message)
    }

    @Test("count zero or negative", arguments: [0, -1, Int.min])
    func invalidCount(count: Int) throws {
        let error = try #require(error { try Loop(seconds: 1, count: count) { _ in } })
        #expect(error.code == .invalidCount)
        #expect(error.message == "count must be at least 1, got \(count)")
    }

    @Test("a negative or huge Schedule.every, an empty list of times")
    func invalidSchedules() throws {
        let negative = try #require(error { try Loop(schedule: .every(.seconds(-5))) { _ in } })
        #expect(negative.code == .invalidInterval)
        #expect(negative.message.contains("-5.0 seconds"), "\(negative.message)")
        let huge = try #require(error { try Loop(schedule: .every(.seconds(Int64.max))) { _ in } })
        #expect(huge.code == .invalidInterval)
        let empty = try #require(error { try Loop(times: []) { _ in } })
        #expect(empty.code == .invalidTimeOfDay)
        #expect(empty.message == "times must not be empty")
    }

    @Test(
        "time-of-day components out of range",
        arguments: [
            (24, 0, 0, 0, "hour must be in 0...23, got 24"),
            (-1, 0, 0, 0, "hour must be in 0...23, got -1"),
            (0, 60, 0, 0, "minute must be in 0...59, got 60"),
            (0, 0, 60, 0, "second must be in 0...59, got 60"),
            (0, 0, 0, 1_000_000_000, "nanosecond must be in 0...999999999, got 1000000000"),
        ] as [(Int, Int, Int, Int, String)]
    )
    func invalidTimeOfDay(hour: Int, minute: Int, second: Int, nanosecond: Int, message: String) {
        do {
            _ = try TimeOfDay(hour: hour, minute: minute, second: second, nanosecond: nanosecond)
            Issue.record("no error for \(hour):\(minute):\(second).\(nanosecond)")
        } catch let error as LoopError {
            #expect(error.code == .invalidTimeOfDay)
            #expect(error.message == message)
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("valid extremes are accepted and read back as given")
    func validExtremes() throws {
        let zero = try Loop(seconds: 0) { _ in }
        #expect(zero.seconds == 0)
        #expect(zero.schedule == .every(.zero))
        let long = try Loop(hours: 24 * 365 * 200) { _ in }
        #expect(long.hours == Double(24 * 365 * 200))
        let counted = try Loop(seconds: 1, count: 1) { _ in }
        #expect(counted.count == 1)
        let time = try TimeOfDay(hour: 23, minute: 59, second: 59, nanosecond: 999_999_999)
        #expect(time.timeZone.secondsFromGMT() == 0)
        #expect(time.description == "23:59:59.999999999@UTC")
    }
}
