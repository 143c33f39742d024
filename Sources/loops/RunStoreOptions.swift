import Foundation
import Logging
import Loops
import LoopsCommandLine
import LoopsPostgres

/// `--state-dir` and `--catch-up` of `loops run`: where the loop records its runs, and what it
/// runs at start of the slots missed while it was down.
enum RunStoreOptions {
    /// The store of `--postgres` (or `$LOOPS_POSTGRES_URL`), else of `--state-dir`, else of
    /// systemd's `$STATE_DIRECTORY` (`StateDirectory=`); nil when none is given: the loop
    /// records nothing.
    static func makeRunStore(
        stateDirectory: String?,
        postgres: String?,
        lease: String?,
        environment: [String: String],
        logger: Logger
    ) throws -> (any RunStore)? {
        let url = postgres ?? environment["LOOPS_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
        if let lease, url == nil {
            throw CommandLineError("--lease \(lease) needs --postgres URL (or LOOPS_POSTGRES_URL)")
        }
        if let url {
            guard stateDirectory == nil else {
                throw CommandLineError("--postgres and --state-dir both name a store; give one")
            }
            let duration = try lease.map(parseLease) ?? .seconds(30)
            do {
                return try PostgresRunStore(url: url, lease: duration, logger: logger)
            } catch let error as LoopError {
                throw CommandLineError("--postgres: \(error.message)")
            }
        }
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

    /// `--lease`: a duration in the `--every` syntax, at least 300 ms.
    static func parseLease(_ text: String) throws -> Duration {
        let duration = try Run.parsePositiveDuration(text, option: "--lease")
        guard duration >= PostgresRunStore.minimumLease else {
            throw CommandLineError("--lease must be at least 300ms, got '\(text)'")
        }
        return duration
    }

    /// How many missed slots `--catch-up all` runs at most.
    static let defaultLimit = 100
}
