public import ArgumentParser
import Foundation
public import Loops

/// The schedule flags shared by the subcommands: exactly one of `--every`, `--times`,
/// `--calendar` and `--cron` (with an optional `--tz`).
public struct ScheduleOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: ArgumentHelp("A relative interval: 500ms, 5s, 1.5m, 1h30m.", valueName: "duration"))
    var every: String?

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "Times of day, comma-separated, HH:MM[:SS[.frac]][@Zone] (UTC by default): 09:00,17:30:15.25@Europe/Berlin.",
            valueName: "times"
        )
    )
    var times: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("A systemd calendar expression (OnCalendar= syntax).", valueName: "expr"))
    var calendar: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("A 5-field cron expression or @daily-style shortcut.", valueName: "expr"))
    var cron: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("The time zone of --cron (default: the system's zone).", valueName: "zone"))
    var tz: String?

    /// The schedule flag given (`--every`, …), for messages; the first when several were.
    public var flag: String {
        [("--every", every), ("--times", times), ("--calendar", calendar), ("--cron", cron)]
            .first { $0.1 != nil }?.0 ?? "schedule"
    }

    /// No schedule yet, for argument-parser, which fills in the options.
    public init() {}

    /// The schedule the flags describe.
    ///
    /// - Throws: ``CommandLineError`` naming the flag and the bad value, or the value of `TZ`
    ///   when the schedule reads the local zone and `TZ` names no zone loops can use.
    public func makeSchedule() throws -> Schedule {
        let given = [("--every", every), ("--times", times), ("--calendar", calendar), ("--cron", cron)]
            .filter { $0.1 != nil }
        guard given.count == 1, let (flag, value) = given.first.map({ ($0.0, $0.1 ?? "") }) else {
            if given.isEmpty {
                throw CommandLineError("a schedule is required: give one of --every, --times, --calendar, --cron")
            }
            throw CommandLineError(
                "give only one schedule, got " + given.map(\.0).joined(separator: " and ")
            )
        }
        if tz != nil, flag != "--cron" {
            throw CommandLineError("--tz applies to --cron only, not to \(flag)")
        }
        var zone: TimeZone?
        if let tz {
            guard let named = TimeZone(identifier: tz) else {
                throw CommandLineError("--tz: unknown time zone '\(tz)'")
            }
            zone = named
        }
        let schedule: Schedule
        do {
            switch flag {
            case "--every":
                schedule = .every(try DurationFormat.parse(value))
            case "--times":
                schedule = .times(try TimesFormat.parse(value))
            case "--calendar":
                schedule = try .calendar(value)
            default:
                schedule = try .cron(value, timeZone: zone)
            }
        } catch let error as LoopError {
            throw CommandLineError("\(flag): \(error.message)")
        } catch let error as CommandLineError {
            throw CommandLineError("\(flag): \(error.message)")
        }
        // A schedule in the local zone with a TZ that names none: an error, never a silent UTC.
        do {
            try schedule.checkSystemZone()
        } catch {
            throw CommandLineError(error.message)
        }
        return schedule
    }
}
