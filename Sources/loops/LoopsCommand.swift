import ArgumentParser
import Foundation
import LoopsCommandLine

/// The `loops` tool: inspect schedules (`loops next`) and run commands on them (`loops run`).
///
/// Every bad input — an unknown flag, a missing or conflicting schedule, a value that does not
/// parse — prints exactly one line on standard error and exits with status 2, so scripts can
/// tell a usage error from a command's own failure. `--help` prints help and exits 0. The word
/// after an option that takes a value is always that value, even when it starts with `-`, so
/// `--count -1` is reported as a count below 1 and `--every -5s` as a bad duration (rather than
/// as a missing value).
@main
struct LoopsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loops",
        abstract: "Run and inspect background-loop schedules.",
        subcommands: [Next.self, Run.self]
    )

    /// `loops` alone is a usage error like any other (one line, status 2), not a help page.
    func run() async throws {
        throw CommandLineError("a subcommand is required: next or run (see 'loops --help')")
    }

    /// The exit status for bad input, as for most Unix tools (argument-parser's default is 64).
    static let usageErrorStatus: Int32 = 2

    /// Parses and runs a command; a bad input becomes one line on stderr and status 2.
    static func main() async {
        StandardStreams.reopenClosedOnes()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let exitCode as ExitCode {
            // A command that reports its own status (for instance a child's exit code).
            Foundation.exit(exitCode.rawValue)
        } catch {
            if exitCode(for: error) == .success {
                // --help and --version: argument-parser prints them and exits 0.
                exit(withError: error)
            }
            StandardStreams.writeError(oneLine(for: error) + "\n")
            Foundation.exit(usageErrorStatus)
        }
    }

    /// `loops: error: <message>` on one line, whatever the error.
    static func oneLine(for error: any Error) -> String {
        CommandLineError.oneLine(for: error, command: self)
    }
}
