public import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The embedded ``RunStore``: one small JSON file per loop name in a directory — systemd's
/// `$STATE_DIRECTORY` (``systemd(environment:)``) or one you name.
///
/// Every write goes to a temporary file in the same directory, which is flushed (`fsync`) and
/// renamed over the record, and the directory is flushed too: a crash at any point leaves the
/// previous record or the new one, never a mix and never nothing. An `flock` on a lock file per
/// loop serialises processes that share the directory, so two of them never both claim a slot.
///
/// A slot counts as claimed once its claim is written, before the body runs (systemd's
/// `Persistent=` records a timer's last trigger the same way): a slot whose process crashed
/// mid-body is not run again, and its fencing token is never reused. A store shared by replicas
/// on several machines needs a database instead (LoopsPostgres).
///
/// A file that is not a record of this library, of another loop, or of a newer format gets a
/// ``LoopError`` with code ``LoopError/Code/corruptRecord`` naming it; it is never overwritten.
public final class FileRunStore: RunStore {
    /// Where the records are.
    public let directory: URL
    /// Serialises this process's operations; `flock` serialises processes.
    private let lock = LockedValue(())

    /// A store in `directory`, created (with its parents, mode 0700) when missing.
    ///
    /// - Throws: ``LoopError`` (`.storeFailed`) when the directory cannot be created or is not a
    ///   directory.
    public init(directory: URL) throws {
        self.directory = directory.standardizedFileURL
        let path = self.directory.path
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw LoopError(.storeFailed, "the run store's directory '\(path)' is not a directory")
            }
        } else {
            do {
                try FileManager.default.createDirectory(
                    at: self.directory,
                    withIntermediateDirectories: true,
                    attributes: [.posixPermissions: 0o700]
                )
            } catch {
                throw LoopError(.storeFailed, "cannot create the run store's directory '\(path)': \(Self.reason(of: error))")
            }
        }
        guard access(path, W_OK | X_OK) == 0 else {
            throw LoopError(.storeFailed, "the run store's directory '\(path)' is not writable: \(String(cString: strerror(errno)))")
        }
    }

    /// The store systemd gives a service with `StateDirectory=`: the first directory of
    /// `$STATE_DIRECTORY`; nil when the variable is unset or empty.
    ///
    /// - Throws: ``LoopError`` (`.storeFailed`) when that directory cannot be used.
    public static func systemd(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> FileRunStore? {
        guard let value = environment["STATE_DIRECTORY"],
            let first = value.split(separator: ":").first, !first.isEmpty
        else { return nil }
        return try FileRunStore(directory: URL(fileURLWithPath: String(first), isDirectory: true))
    }

    /// The file that holds `loopName`'s record: the name with every byte other than ASCII
    /// letters, digits, `-` and `_` percent-encoded, and `.json`.
    public func fileURL(for loopName: String) -> URL {
        directory.appendingPathComponent(Self.fileName(for: loopName) + ".json")
    }

    // MARK: RunStore

    /// The last completed slot of `loopName`, nil when none was recorded.
    ///
    /// - Throws: ``LoopError`` (`.corruptRecord`) for a file that is not a record of this loop,
    ///   (`.storeFailed`) when it cannot be read.
    public func lastRun(of loopName: String) async throws -> RunRecord? {
        try withRecord(of: loopName) { record in record?.lastRun }
    }

    /// Claims `scheduledAt`: nil when it, or a later slot, was claimed already.
    ///
    /// - Throws: ``LoopError`` (`.corruptRecord`, `.storeFailed`) as ``lastRun(of:)``, and
    ///   (`.storeFailed`) when the claim cannot be written.
    public func claim(_ scheduledAt: Date, of loopName: String) async throws -> SlotClaim? {
        try withRecord(of: loopName) { (record: inout FileRunRecord?) throws(LoopError) -> SlotClaim? in
            var updated = record ?? FileRunRecord(loop: loopName)
            if let last = updated.lastClaimed, scheduledAt <= last.scheduledAt { return nil }
            let token = max(updated.lastClaimed?.fencingToken ?? 0, updated.lastRun?.fencingToken ?? 0) + 1
            updated.lastClaimed = FileRunRecord.Claim(scheduledAt: scheduledAt, fencingToken: token)
            record = updated
            return SlotClaim(loopName: loopName, scheduledAt: scheduledAt, fencingToken: token)
        }
    }

    /// Records the end of `claim`'s slot, unless a later slot's end is recorded already.
    ///
    /// - Throws: ``LoopError`` (`.corruptRecord`, `.storeFailed`).
    public func complete(_ claim: SlotClaim, outcome: RunRecord.Outcome, finishedAt: Date) async throws {
        try withRecord(of: claim.loopName) { (record: inout FileRunRecord?) throws(LoopError) in
            var updated = record ?? FileRunRecord(loop: claim.loopName)
            if let last = updated.lastRun, last.scheduledAt > claim.scheduledAt { return }
            updated.lastRun = RunRecord(
                scheduledAt: claim.scheduledAt,
                finishedAt: finishedAt,
                outcome: outcome,
                fencingToken: claim.fencingToken
            )
            record = updated
        }
    }

    // MARK: Files

    /// Runs `body` on the record of `loopName` under both locks, and writes the record back
    /// (atomically) when `body` changed it.
    private func withRecord<Result>(
        of loopName: String,
        _ body: (inout FileRunRecord?) throws(LoopError) -> Result
    ) throws(LoopError) -> Result {
        let file = fileURL(for: loopName)
        return try lock.withLock { (_: inout Void) throws(LoopError) -> Result in
            let lockDescriptor = try openLockFile(for: loopName)
            defer { close(lockDescriptor) }
            while flock(lockDescriptor, LOCK_EX) != 0 {
                guard errno == EINTR else { throw failure("cannot lock", file) }
            }
            let original = try read(file, loopName: loopName)
            var record = original
            let result = try body(&record)
            if record != original, let record { try write(record, to: file) }
            return result
        }
    }

    private func openLockFile(for loopName: String) throws(LoopError) -> Int32 {
        let path = directory.appendingPathComponent(Self.fileName(for: loopName) + ".lock").path
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw LoopError(.storeFailed, "cannot open the run store's lock file '\(path)': \(String(cString: strerror(errno)))")
        }
        return descriptor
    }

    private func read(_ file: URL, loopName: String) throws(LoopError) -> FileRunRecord? {
        let data: Data
        do {
            data = try Data(contentsOf: file)
        } catch {
            if !FileManager.default.fileExists(atPath: file.path) { return nil }
            throw LoopError(.storeFailed, "cannot read the run record '\(file.path)': \(Self.reason(of: error))")
        }
        let record: FileRunRecord
        do {
            record = try JSONDecoder.runRecords.decode(FileRunRecord.self, from: data)
        } catch {
            throw LoopError(.corruptRecord, "the run record '\(file.path)' is not a swift-loops run record (\(Self.reason(of: error)))")
        }
        guard record.format == FileRunRecord.formatName else {
            throw LoopError(.corruptRecord, "the run record '\(file.path)' has format '\(record.format)', not '\(FileRunRecord.formatName)'")
        }
        guard record.version <= FileRunRecord.currentVersion else {
            throw LoopError(
                .corruptRecord,
                "the run record '\(file.path)' has version \(record.version); this swift-loops reads up to \(FileRunRecord.currentVersion)"
            )
        }
        guard record.loop == loopName else {
            throw LoopError(.corruptRecord, "the run record '\(file.path)' belongs to loop '\(record.loop)', not '\(loopName)'")
        }
        return record
    }

    /// Temporary file, `fsync`, `rename`, `fsync` of the directory.
    private func write(_ record: FileRunRecord, to file: URL) throws(LoopError) {
        let data: Data
        do {
            data = try JSONEncoder.runRecords.encode(record)
        } catch {
            throw LoopError(.storeFailed, "cannot encode the run record of '\(record.loop)': \(Self.reason(of: error))")
        }
        let temporary = directory.appendingPathComponent(".\(file.lastPathComponent).\(getpid()).tmp")
        let descriptor = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw failure("cannot create", temporary) }
        var written = 0
        let complete: Bool = data.withUnsafeBytes { buffer in
            while written < buffer.count {
                let count = Glibc.write(descriptor, buffer.baseAddress! + written, buffer.count - written)
                if count < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                written += count
            }
            return fsync(descriptor) == 0
        }
        let writeError = errno
        close(descriptor)
        guard complete else {
            unlink(temporary.path)
            errno = writeError
            throw failure("cannot write", temporary)
        }
        guard rename(temporary.path, file.path) == 0 else {
            let renameError = errno
            unlink(temporary.path)
            errno = renameError
            throw failure("cannot rename over", file)
        }
        // The rename is durable only once the directory is.
        let directoryDescriptor = open(directory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            _ = fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }

    private func failure(_ what: String, _ file: URL) -> LoopError {
        LoopError(.storeFailed, "\(what) the run record '\(file.path)': \(String(cString: strerror(errno)))")
    }

    static func fileName(for loopName: String) -> String {
        var name = ""
        for byte in loopName.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                name.append(Character(Unicode.Scalar(byte)))
            default:
                name += String(format: "%%%02X", byte)
            }
        }
        return name
    }

    private static func reason(of error: any Error) -> String {
        if let error = error as? DecodingError {
            switch error {
            case .dataCorrupted(let context), .keyNotFound(_, let context), .typeMismatch(_, let context),
                .valueNotFound(_, let context):
                return context.debugDescription
            @unknown default:
                return "\(error)"
            }
        }
        return (error as NSError).localizedDescription
    }
}

/// What a ``FileRunStore`` file holds.
struct FileRunRecord: Codable, Equatable, Sendable {
    static let formatName = "swift-loops run record"
    static let currentVersion = 1

    /// The last slot claimed, written before its body runs.
    struct Claim: Codable, Equatable, Sendable {
        var scheduledAt: Date
        var fencingToken: UInt64
    }

    var format = Self.formatName
    var version = Self.currentVersion
    var loop: String
    var lastClaimed: Claim?
    var lastRun: RunRecord?

    init(loop: String) {
        self.loop = loop
    }
}

extension JSONEncoder {
    /// Dates as seconds since 1970 with every digit of the `Double`: a slot read back is the
    /// same instant, so it compares equal to the one the schedule gives.
    static var runRecords: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return encoder
    }
}

extension JSONDecoder {
    static var runRecords: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return decoder
    }
}
