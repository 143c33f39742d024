import Foundation
import LoopsTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A PostgreSQL server of the test's own: `initdb` in a temporary directory as the unprivileged
/// `postgres` user (Debian's `postgresql` package), listening on 127.0.0.1 on a free port, with
/// its socket in the same directory. Stopped by PID (``stop()``, and at exit); can be stopped
/// and started again on the same data, as a database restart.
final class TestPostgres: @unchecked Sendable {
    /// Why the tests skip: no server binaries (set when PostgreSQL cannot be installed).
    static let unavailableReason: String? = {
        guard binDirectory != nil else {
            return "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): the LoopsPostgres tests skip; `make test` installs Debian's postgresql package"
        }
        guard getpwnam("postgres") != nil || getuid() != 0 else {
            return "no unprivileged 'postgres' user to run the test server as"
        }
        return nil
    }()

    static let binDirectory: String? = {
        let root = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return versions.compactMap(Int.init).sorted().reversed()
            .map { "\(root)/\($0)/bin" }
            .first { FileManager.default.isExecutableFile(atPath: "\($0)/initdb") }
    }()

    /// The one server of the test process, started on first use.
    static let shared: TestPostgres = {
        let server = try! TestPostgres()
        atexit { TestPostgres.shared.destroy() }
        return server
    }()

    let directory: String
    let port: Int
    private let lock = NSLock()
    private var process: SpawnedProcess?

    var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres?sslmode=disable" }

    init() throws {
        guard let bin = Self.binDirectory else { throw TestPostgresError("PostgreSQL is not installed") }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("loops-pg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if getuid() == 0, let user = getpwnam("postgres") {
            chown(directory, user.pointee.pw_uid, user.pointee.pw_gid)
        }
        port = try Self.freePort()
        try Self.runAsPostgres(["\(bin)/initdb", "-D", "\(directory)/data", "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
        try start()
    }

    /// Starts the server on the data directory, and waits until it accepts connections.
    func start() throws {
        guard let bin = Self.binDirectory else { return }
        let server = ["\(bin)/postgres", "-D", "\(directory)/data", "-k", directory, "-h", "127.0.0.1", "-p", "\(port)",
                      "-c", "fsync=off", "-c", "max_connections=100"]
        let process = try Self.spawnAsPostgres(server)
        lock.withLock { self.process = process }
        let deadline = ContinuousClock.now + .seconds(30)
        while !Self.isReady(port: port) {
            guard ContinuousClock.now < deadline, process.isRunning else {
                throw TestPostgresError("the test PostgreSQL did not start on port \(port)")
            }
            usleep(20_000)
        }
    }

    /// Stops the server (SIGINT: fast shutdown) and waits for it (SIGKILL after 60 s).
    func stop() {
        let process = lock.withLock { () -> SpawnedProcess? in
            defer { self.process = nil }
            return self.process
        }
        guard let process else { return }
        process.signal(SIGINT)
        if process.waitBlocking(within: .seconds(60)) == nil { process.kill() }
    }

    /// Stops the server and removes its directory.
    func destroy() {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A database of its own for one test, so that tests never see each other's rows.
    func makeDatabase() throws -> String {
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        try Self.runAsPostgres(psqlCommand("CREATE DATABASE \(name)", database: "postgres"))
        return "postgres://postgres@127.0.0.1:\(port)/\(name)?sslmode=disable"
    }

    /// `command` as the unprivileged `postgres` user when the tests run as root (PostgreSQL
    /// refuses to run as root), from /tmp (a directory that user can enter).
    private static func asPostgres(_ command: [String]) -> (executable: String, arguments: [String]) {
        guard getuid() == 0 else { return (command[0], Array(command.dropFirst())) }
        return ("/usr/bin/setpriv", ["--reuid=postgres", "--regid=postgres", "--clear-groups"] + command)
    }

    private static func spawnAsPostgres(_ command: [String]) throws -> SpawnedProcess {
        let (executable, arguments) = asPostgres(command)
        return try SpawnedProcess(executable, arguments, workingDirectory: "/tmp")
    }

    /// Runs `command` as `postgres` to completion; its stdout. Throws unless it exits 0.
    @discardableResult
    private static func runAsPostgres(_ command: [String]) throws -> String {
        let (executable, arguments) = asPostgres(command)
        let outcome = try SpawnedProcess.run(executable, arguments, workingDirectory: "/tmp")
        guard outcome.termination == .exited(0) else {
            throw TestPostgresError("\(command.joined(separator: " ")) \(outcome.termination): \(outcome.stderr)")
        }
        return outcome.stdout
    }

    /// psql on this server's socket, running `sql` on database `name`; unaligned and
    /// tuples-only, so a query's output is just its values.
    private func psqlCommand(_ sql: String, database name: String) -> [String] {
        ["\(Self.binDirectory!)/psql", "-h", directory, "-p", "\(port)", "-U", "postgres", "-qAt", "-d", name, "-c", sql]
    }

    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestPostgresError("socket: \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw TestPostgresError("bind: \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// `pg_isready`: the server accepts sessions (a TCP connect succeeds earlier, while it is
    /// still starting up).
    private static func isReady(port: Int) -> Bool {
        guard let bin = binDirectory else { return false }
        let outcome = try? SpawnedProcess.run(
            "\(bin)/pg_isready", ["-q", "-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres"], within: .seconds(10)
        )
        return outcome?.termination == .exited(0)
    }

    /// The first column of the first row `sql` returns on database `name` of this server.
    func psqlValue(_ sql: String, database name: String) throws -> String {
        try Self.runAsPostgres(psqlCommand(sql, database: name)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A psql session running `sql` on database `name`, left running (kill it when done).
    func spawnPsql(_ sql: String, database name: String) throws -> SpawnedProcess {
        try Self.spawnAsPostgres(psqlCommand(sql, database: name))
    }

    /// Runs `sql` with psql on database `name` of this server.
    func psql(_ sql: String, database name: String) throws {
        try Self.runAsPostgres(psqlCommand(sql, database: name))
    }
}

struct TestPostgresError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
