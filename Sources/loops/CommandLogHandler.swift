import Logging

/// How the loop and the watchdog of `loops run` log: one line on standard error per message at
/// `.info` and above, `loops: <level>: <message>`, like the tool's other messages (a wedged run
/// that stops the watchdog's keep-alives: `loops: critical: loop 'backup' is unhealthy (…)…`).
/// Never on standard output, which belongs to the runs. Line breaks in a message become spaces,
/// so each message stays one line.
struct CommandLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let text = event.message.description.map { $0.isNewline ? " " : $0 }
        var line = "loops: \(event.level): " + String(text)
        if let error = event.metadata?["error"] ?? metadata["error"] {
            line += ": \(error)"
        }
        StandardStreams.writeError(line + "\n")
    }
}
