import Foundation
import Loops
import Testing

@Suite("FileRunStore: records in a directory, atomic, shared safely between processes")
struct FileRunStoreTests {
    private static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("loops-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    private static func slot(_ seconds: Double) -> Date {
        Date(timeIntervalSince1970: 1_767_225_600 + seconds)
    }

    @Test("claim, complete and lastRun round-trip; tokens increase; a slot is claimed once, never an older one")
    func roundTrip() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try FileRunStore(directory: directory)
        #expect(try await store.lastRun(of: "backup") == nil)
        // A fraction that a decimal rendering could round: read back, it is the same instant.
        let first = Self.slot(0.2)
        let claim = try #require(try await store.claim(first, of: "backup"))
        #expect(claim.fencingToken == 1)
        #expect(claim.scheduledAt == first)
        #expect(try await store.claim(first, of: "backup") == nil)
        #expect(try await store.claim(Self.slot(-5), of: "backup") == nil)
        try await store.complete(claim, outcome: .failed("disk full"), finishedAt: Self.slot(3))
        let record = try #require(try await store.lastRun(of: "backup"))
        #expect(record == RunRecord(scheduledAt: first, finishedAt: Self.slot(3), outcome: .failed("disk full"), fencingToken: 1))
        // A new store on the same directory (a restarted process) goes on from there.
        let restarted = try FileRunStore(directory: directory)
        #expect(try await restarted.lastRun(of: "backup") == record)
        let second = try #require(try await restarted.claim(Self.slot(5.2), of: "backup"))
        #expect(second.fencingToken == 2)
        // Another loop has records of its own.
        #expect(try await restarted.claim(first, of: "report")?.fencingToken == 1)
    }

    @Test("a slot claimed but never completed (the process crashed mid-body) is not run again, and its token is not reused")
    func crashMidBody() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try FileRunStore(directory: directory)
        _ = try #require(try await store.claim(Self.slot(0), of: "job"))
        let restarted = try FileRunStore(directory: directory)
        #expect(try await restarted.lastRun(of: "job") == nil)
        #expect(try await restarted.claim(Self.slot(0), of: "job") == nil)
        #expect(try await restarted.claim(Self.slot(10), of: "job")?.fencingToken == 2)
    }

    @Test("a corrupt, foreign or newer file is a LoopError .corruptRecord naming the file, and is left as it is",
          arguments: [
            ("not json", "{ this is not", "is not a swift-loops run record"),
            ("another format", #"{"format":"something else","version":1,"loop":"job"}"#, "has format 'something else'"),
            ("another loop", #"{"format":"swift-loops run record","version":1,"loop":"other"}"#, "belongs to loop 'other'"),
            ("a newer version", #"{"format":"swift-loops run record","version":99,"loop":"job"}"#, "has version 99"),
          ])
    func corruptFiles(kind: String, content: String, message: String) async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try FileRunStore(directory: directory)
        let file = store.fileURL(for: "job")
        try Data(content.utf8).write(to: file)
        for operation in ["lastRun", "claim"] {
            do {
                if operation == "lastRun" {
                    _ = try await store.lastRun(of: "job")
                } else {
                    _ = try await store.claim(Self.slot(0), of: "job")
                }
                Issue.record("\(kind): \(operation) did not throw")
            } catch let error as LoopError {
                #expect(error.code == .corruptRecord, "\(kind)")
                #expect(error.message.contains(file.path), "\(error.message)")
                #expect(error.message.contains(message), "\(error.message)")
            }
        }
        #expect(try String(contentsOf: file, encoding: .utf8) == content)
    }

    @Test("a temporary file left by a crash between write and rename is ignored; the record before it stands")
    func leftoverTemporaryFile() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try FileRunStore(directory: directory)
        let claim = try #require(try await store.claim(Self.slot(0), of: "job"))
        try await store.complete(claim, outcome: .succeeded, finishedAt: Self.slot(1))
        let leftover = directory.appendingPathComponent(".\(store.fileURL(for: "job").lastPathComponent).99999.tmp")
        try Data("{ half a rec".utf8).write(to: leftover)
        #expect(try await store.lastRun(of: "job")?.scheduledAt == Self.slot(0))
        #expect(try await store.claim(Self.slot(5), of: "job")?.fencingToken == 2)
    }

    @Test("two stores on one directory (two processes) never both get a slot")
    func sharedDirectory() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let stores = try (0..<4).map { _ in try FileRunStore(directory: directory) }
        for round in 0..<25 {
            let slot = Self.slot(Double(round) * 5)
            let granted = try await withThrowingTaskGroup(of: UInt64?.self, returning: [UInt64].self) { group in
                for store in stores {
                    group.addTask { try await store.claim(slot, of: "job")?.fencingToken }
                }
                var tokens: [UInt64] = []
                for try await token in group { if let token { tokens.append(token) } }
                return tokens
            }
            #expect(granted == [UInt64(round + 1)], "round \(round)")
        }
    }

    @Test("names become safe file names; $STATE_DIRECTORY gives the systemd store; a file where the directory should be is refused")
    func namesAndDirectories() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try FileRunStore(directory: directory)
        #expect(store.fileURL(for: "../etc/passwd").lastPathComponent == "%2E%2E%2Fetc%2Fpasswd.json")
        #expect(store.fileURL(for: "nightly-backup_2").lastPathComponent == "nightly-backup_2.json")
        #expect(try FileRunStore.systemd(environment: [:]) == nil)
        let state = directory.appendingPathComponent("state")
        let systemd = try #require(try FileRunStore.systemd(environment: ["STATE_DIRECTORY": state.path + ":/nonexistent/second"]))
        #expect(systemd.directory.path == state.standardizedFileURL.path)
        let file = directory.appendingPathComponent("a-file")
        try Data().write(to: file)
        #expect(throws: LoopError.self) { try FileRunStore(directory: file) }
        do {
            _ = try FileRunStore(directory: file)
        } catch let error as LoopError {
            #expect(error.code == .storeFailed)
            #expect(error.message.contains(file.path))
        }
    }
}
