import Foundation
import LoopsTestSupport

/// The built `loops` executable: `LOOPS_BINARY` if set, else next to the test bundle (SwiftPM puts
/// products and the test bundle in the same directory), found from several starting points so the
/// lookup does not depend on how the test runner was started.
func loopsBinary() throws -> URL {
    let fileManager = FileManager.default
    if let explicit = ProcessInfo.processInfo.environment["LOOPS_BINARY"] {
        return URL(fileURLWithPath: explicit)
    }
    var directories: [URL] = [Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
    if let executable = Bundle.main.executableURL {
        directories.append(executable.deletingLastPathComponent())
    }
    if let first = CommandLine.arguments.first {
        directories.append(URL(fileURLWithPath: first).deletingLastPathComponent())
    }
    if let exe = try? fileManager.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        let directory = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // On Linux the test binary may sit inside `<name>.xctest`, next to the products.
        directories += [directory, directory.deletingLastPathComponent()]
    }
    for directory in directories {
        let candidate = directory.appendingPathComponent("loops")
        var isDirectory: ObjCBool = false
        if fileManager.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue,
            fileManager.isExecutableFile(atPath: candidate.path)
        {
            return candidate
        }
    }
    throw BinaryNotFound(searched: directories.map(\.path))
}

struct BinaryNotFound: Error, CustomStringConvertible {
    let searched: [String]
    var description: String { "the loops executable was not found in \(searched); build it or set LOOPS_BINARY" }
}

/// What a run of a program printed and how it ended.
typealias ProgramOutcome = SpawnedProcess.Outcome

/// Runs a program to completion with output captured in temporary files (no pipe can fill up);
/// `environment` adds to the test process's variables (nil removes one). A program still
/// running after 2 minutes is killed and this throws.
func runToCompletion(_ executable: URL, _ arguments: [String], environment: [String: String?] = [:]) throws -> ProgramOutcome {
    try SpawnedProcess.run(executable.path, arguments, environment: SpawnedProcess.environment(with: environment))
}
