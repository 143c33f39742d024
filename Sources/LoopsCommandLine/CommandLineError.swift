public import ArgumentParser

/// A bad value on the command line; the message names the option and the value.
public struct CommandLineError: Error, CustomStringConvertible {
    /// The message, without the `loops: error: ` prefix.
    public let message: String

    /// An error with `message`, which should name the option and the value.
    public init(_ message: String) {
        self.message = message
    }

    /// The message.
    public var description: String { message }

    /// `loops: error: <message>` on one line, whatever the error: the tool's promise is one
    /// line on stderr for every bad input, and argument-parser's own messages span several.
    /// `command` renders errors that are not ``CommandLineError`` (argument-parser's).
    public static func oneLine(for error: any Error, command: any ParsableCommand.Type) -> String {
        let message: String
        if let commandLineError = error as? CommandLineError {
            message = commandLineError.message
        } else {
            message = command.message(for: error)
        }
        let text = message
            .split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
            .joined(separator: " ")
        let stripped = text.hasPrefix("Error: ") ? String(text.dropFirst("Error: ".count)) : text
        return "loops: error: " + (stripped.isEmpty ? "invalid arguments" : stripped)
    }
}
