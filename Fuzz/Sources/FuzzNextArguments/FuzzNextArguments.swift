import ArgumentParser
import Foundation
import FuzzSupport
import LoopsCommandLine

/// The root of `loops` with only the subcommand under test, so that parsing takes the tool's
/// path: `loops next ARGS` is parsed as the root command with `next` first.
private struct Root: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "loops", subcommands: [Next.self])
}

/// At most this many lines per input, so that `--count 1000000000` costs no more than
/// `--count 64`.
private let lineLimit = 64

/// "Now" for inputs without `--from`: fixed, so that a crash reproduces.
private let now = Date(timeIntervalSince1970: 1_774_738_800)

/// `loops next` with the input as its arguments (split at NUL bytes), up to its output, which
/// goes into a buffer; errors are rendered as the tool's one-line message.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNextArguments(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    Fuzz.setUp()
    let arguments = Fuzz.text(data, count).split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
    var output = ""
    do {
        var command = try Root.parseAsRoot(["next"] + arguments)
        guard let next = command as? Next else {
            // `help`-style requests parse into argument-parser's help command, whose run throws
            // the request that the tool turns into the help text.
            try command.run()
            fatalError("\(arguments.debugDescription) parsed into \(type(of: command)), which ran")
        }
        var lines = 0
        try next.forEachLine(now: now, limit: lineLimit) { line in
            // YYYY-MM-DDTHH:MM:SS.ffffffZ and a newline, as documented, and readable as --from.
            guard line.utf8.count == 28, line.hasSuffix("\n"), InstantFormat.parse(String(line.dropLast())) != nil else {
                fatalError("\(arguments.debugDescription) printed \(line.debugDescription)")
            }
            lines += 1
            output += line
        }
        guard lines <= lineLimit else { fatalError("\(arguments.debugDescription) printed \(lines) lines") }
    } catch {
        if Root.exitCode(for: error) == .success {
            // --help: the tool prints the full help and exits 0.
            output = Root.fullMessage(for: error)
        } else {
            output = CommandLineError.oneLine(for: error, command: Root.self)
            guard !output.contains("\n") else {
                fatalError("\(arguments.debugDescription): the error spans lines: \(output.debugDescription)")
            }
        }
    }
    _ = output
    return 0
}
