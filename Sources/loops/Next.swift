import ArgumentParser
import Foundation
import Loops

/// `loops next`: the instants at which a loop started at `--from` would fire if its body took
/// no time, one per line in UTC with microseconds.
struct Next: ParsableCommand {
    static let configuration = CommandConfiguration(
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

    func run() throws {
        let schedule = try schedule.makeSchedule()
        let start = try from.map { text in
            guard let date = InstantFormat.parse(text) else {
                throw CommandLineError(
                    "--from: '\(text)' is not an ISO 8601 instant with a zone, such as 2026-03-29T00:30:00Z"
                )
            }
            return date
        } ?? Date()
        guard count >= 1 else {
            throw CommandLineError("--count must be at least 1, got \(count)")
        }
        var output = ""
        for date in schedule.fireDates(from: start).prefix(count) {
            output += InstantFormat.format(date) + "\n"
            if output.utf8.count >= 64 * 1024 {
                FileHandle.standardOutput.write(Data(output.utf8))
                output = ""
            }
        }
        FileHandle.standardOutput.write(Data(output.utf8))
    }
}
