import Foundation
import Loops
import LoopsCommandLine

/// `--state-dir` and `--catch-up` of `loops run`: where the loop records its runs, and what it
/// runs at start of the slots missed while it was down.
enum RunStoreOptions {
    /// The store of `--state-dir`, else of systemd's `$STATE_DIRECTORY` (`StateDirectory=`);
    /// nil when neither is given: the loop records nothing.
    static func makeRunStore(stateDirectory: String?, environment: [String: String]) throws -> (any RunStore)? {
        do {
            if let stateDirectory {
                guard !stateDirectory.isEmpty else { throw CommandLineError("--state-dir must not be empty") }
                return try FileRunStore(directory: URL(fileURLWithPath: stateDirectory, isDirectory: true))
            }
            return try FileRunStore.systemd(environment: environment)
        } catch let error as LoopError {
            throw CommandLineError("--state-dir: \(error.message)")
        }
    }

    /// `none`, `latest`, `all` (up to 100 slots) or `all:N`.
    static func parseCatchUp(_ text: String) throws -> CatchUp {
        switch text {
        case "none": return .none
        case "latest": return .latest
        case "all": return .all(limit: defaultLimit)
        default:
            guard text.hasPrefix("all:") else {
                throw CommandLineError("--catch-up: '\(text)' is not none, latest, all or all:N")
            }
            let number = text.dropFirst(4)
            guard let limit = Int(number), (1...CatchUp.maximumLimit).contains(limit) else {
                throw CommandLineError("--catch-up: '\(number)' in '\(text)' is not a number of slots from 1 to \(CatchUp.maximumLimit)")
            }
            return .all(limit: limit)
        }
    }

    /// How many missed slots `--catch-up all` runs at most.
    static let defaultLimit = 100
}
