public import ArgumentParser
public import Foundation
import Loops

/// `loops next`: the instants at which a loop started at `--from` would fire if its body took
/// no time, one per line in UTC with microseconds.
public struct Next: ParsableCommand {
    /// The help texts of `loops next`.
    public static let configuration = CommandConfiguration(
        abstract: "Print the next instants of a schedule, one per line, in UTC.",
        discussion: """
            Exactly one of --every, --times, --calendar and --cron gives the schedule. Instants are \
            printed as YYYY-MM-DDTHH:MM:SS.ffffffZ; the first is at or after --from. Fewer than \
            --count lines are printed when the schedule ends.
            """
    )

    /// How many instants are printed when `--count` is not given.
    static let defaultCount = 10

    @OptionGroup var schedule: ScheduleOptions

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "The start instant, ISO 8601 with a zone (2026-03-29T00:30:00Z, 2026-03-29T02:30:00.25+02:00); default now.",
            valueName: "iso8601"
        )
    )
    var from: String?

    @Option(parsing: .unconditional, help: "How many instants to print (at least 1).")
    var count: Int = Next.defaultCount

    /// An empty command, for argument-parser, which fills in the options.
    public init() {}

    /// Prints the instants on standard output.
    public func run() throws {
        var output = ""
        try forEachLine(now: Date()) { line in
            output += line
            if output.utf8.count >= 64 * 1024 {
                FileHandle.standardOutput.write(Data(output.utf8))
                output = ""
            }
        }
        FileHandle.standardOutput.write(Data(output.utf8))
    }

    /// Everything `run()` does short of writing: checks the options and hands each output line
    /// (with its newline) to `body`, starting from `now` when `--from` is absent.
    ///
    /// `limit` caps the number of lines below `--count`, so that a caller that cannot wait for
    /// `--count 1000000000` (a fuzz target) still runs exactly this code.
    ///
    /// - Throws: ``CommandLineError`` naming the option and the bad value.
    public func forEachLine(now: Date, limit: Int = .max, _ body: (String) throws -> Void) throws {
        let schedule = try schedule.makeSchedule()
        let start = try from.map { text in
            guard let date = InstantFormat.parse(text) else {
                throw CommandLineError(
                    "--from: '\(text)' is not an ISO 8601 instant with a zone from year 0000 on, such as 2026-03-29T00:30:00Z"
                )
            }
            return date
        } ?? now
        guard count >= 1 else {
            throw CommandLineError("--count must be at least 1, got \(count)")
        }
        for date in schedule.fireDates(from: start).prefix(min(count, max(limit, 0))) {
            try body(InstantFormat.format(date) + "\n")
        }
    }
}
