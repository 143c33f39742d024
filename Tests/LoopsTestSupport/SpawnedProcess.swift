import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process of a test: started with `posix_spawn`, reaped with `waitpid`, every wait
/// bounded.
///
/// Not Foundation's `Process`: its `waitUntilExit()` spins the calling thread's run loop until
/// a manager thread has noticed the child's exit, and called off the main thread (a test's
/// cooperative thread) after a few hundred children it can wait for ever for a child that has
/// long exited — a CI run of this suite hung that way. `waitpid` on the child's own PID cannot
/// miss an exit, and a PID is never signalled once reaped, so a signal cannot reach a recycled
/// PID.
public final class SpawnedProcess: @unchecked Sendable {
    /// Where a standard stream of the child goes.
    public enum Stream: Sendable {
        /// `/dev/null`.
        case null
        /// A file, created or truncated.
        case file(String)
        /// Closed in the child.
        case closed
        /// The given descriptor of the test process (the child gets a copy).
        case descriptor(Int32)
    }

    /// How a child ended.
    public enum Termination: Sendable, Equatable, CustomStringConvertible {
        /// `exit(status)`.
        case exited(Int32)
        /// Killed by `signal`.
        case signaled(Int32)

        /// The exit status; nil when a signal ended the child.
        public var exitStatus: Int32? {
            if case .exited(let status) = self { return status }
            return nil
        }

        /// `exited N` or `killed by signal N`.
        public var description: String {
            switch self {
            case .exited(let status): return "exited \(status)"
            case .signaled(let signal): return "killed by signal \(signal)"
            }
        }
    }

    /// The child's PID, valid until the child is reaped.
    public let pid: Int32
    /// The executable, for messages.
    public let executable: String
    private let lock = NSLock()
    private var termination: Termination?

    /// Starts `executable` (a path; no `PATH` search) with `arguments`.
    ///
    /// - Parameters:
    ///   - environment: the child's whole environment; nil: the test process's, without the
    ///     systemd variables (``inheritedEnvironment``).
    ///   - workingDirectory: the child's working directory; nil: the test process's.
    public init(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        workingDirectory: String? = nil,
        stdin: Stream = .null,
        stdout: Stream = .null,
        stderr: Stream = .null
    ) throws {
        self.executable = executable
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (descriptor, stream) in [(Int32(0), stdin), (1, stdout), (2, stderr)] {
            switch stream {
            case .null:
                posix_spawn_file_actions_addopen(&actions, descriptor, "/dev/null", descriptor == 0 ? O_RDONLY : O_WRONLY, 0)
            case .file(let path):
                posix_spawn_file_actions_addopen(&actions, descriptor, path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            case .closed:
                posix_spawn_file_actions_addclose(&actions, descriptor)
            case .descriptor(let source):
                posix_spawn_file_actions_adddup2(&actions, source, descriptor)
            }
        }
        // Nothing else of the test process: a long-lived child (the test PostgreSQL server)
        // must not hold the runner's pipes and sockets, nor another test's files.
        if let closeFrom = Self.closeFrom {
            _ = closeFrom(&actions, 3)
        }
        if let workingDirectory {
            guard let addChdir = Self.addChdir else {
                throw SpawnError("cannot start \(executable) in \(workingDirectory): no posix_spawn_file_actions_addchdir_np (glibc < 2.29)")
            }
            _ = addChdir(&actions, workingDirectory)
        }

        // Default dispositions and an empty mask, whatever the test process blocked or ignored.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var everySignal = sigset_t()
        sigfillset(&everySignal)
        var noSignal = sigset_t()
        sigemptyset(&noSignal)
        posix_spawnattr_setsigdefault(&attributes, &everySignal)
        posix_spawnattr_setsigmask(&attributes, &noSignal)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let environment = environment ?? Self.inheritedEnvironment
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw SpawnError("cannot start \(executable): \(String(cString: strerror(result)))")
        }
        self.pid = pid
    }

    /// glibc's `posix_spawn_file_actions_addchdir_np` (2.29 and later), which the Glibc module
    /// does not declare.
    private static let addChdir: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32).self)
    }()

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later), likewise.
    private static let closeFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    /// The variables of the service manager's protocol, which tests of the in-process notifier
    /// set in this process's environment for a moment (`setenv`).
    static let systemdVariables = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]

    /// The test process's environment without ``systemdVariables``: a child spawned while such
    /// a test runs in parallel must not inherit its notify socket. `systemd-analyze`, given one,
    /// sends to it and blocks once its queue is full (the test no longer reads it): an oracle
    /// test then waited two minutes for a child that could not end.
    public static var inheritedEnvironment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for key in systemdVariables { environment[key] = nil }
        return environment
    }

    /// The test process's environment, without the systemd variables (``inheritedEnvironment``),
    /// with `changes` applied (a nil value removes a variable).
    public static func environment(with changes: [String: String?]) -> [String: String] {
        var environment = inheritedEnvironment
        for (key, value) in changes { environment[key] = value }
        return environment
    }

    /// How the child ended, reaping it if it just did; nil while it runs. Never blocks.
    public func poll() -> Termination? {
        lock.withLock { reap(blocking: false) }
    }

    /// Whether the child still runs.
    public var isRunning: Bool { poll() == nil }

    /// Waits until the child ends, at most `limit`; nil when it still runs then.
    public func wait(within limit: Duration) async -> Termination? {
        let deadline = ContinuousClock.now + limit
        while true {
            if let termination = poll() { return termination }
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// ``wait(within:)`` for synchronous code: polls every 2 ms, blocking the calling thread.
    public func waitBlocking(within limit: Duration) -> Termination? {
        let deadline = ContinuousClock.now + limit
        while true {
            if let termination = poll() { return termination }
            if ContinuousClock.now >= deadline { return nil }
            usleep(2_000)
        }
    }

    /// Sends `signal` to the child if it has not been reaped yet.
    public func signal(_ signal: Int32) {
        lock.withLock {
            if termination == nil { Glibc.kill(pid, signal) }
        }
    }

    /// Ends the child with SIGKILL (if it still runs) and reaps it.
    @discardableResult
    public func kill() -> Termination {
        lock.withLock {
            if let termination { return termination }
            Glibc.kill(pid, SIGKILL)
            return reap(blocking: true)!
        }
    }

    /// Waits until the child ends, at most `limit`; then kills it. Returns how it ended, or
    /// nil when it had to be killed.
    public func finish(within limit: Duration) async -> Termination? {
        if let termination = await wait(within: limit) { return termination }
        kill()
        return nil
    }

    deinit {
        // No zombie and no orphan: a test that failed midway still ends its children.
        if termination == nil {
            Glibc.kill(pid, SIGKILL)
            _ = reap(blocking: true)
        }
    }

    /// `waitpid` on the child. Call with the lock held.
    private func reap(blocking: Bool) -> Termination? {
        if let termination { return termination }
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, blocking ? 0 : WNOHANG)
            if result == pid { break }
            if result == 0 { return nil }
            if errno == EINTR { continue }
            // ECHILD: someone else reaped it; nothing more can be known.
            termination = .exited(-1)
            return termination
        }
        let signal = status & 0x7f
        termination = signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
        return termination
    }
}

extension SpawnedProcess {
    /// What a program printed and how it ended.
    public struct Outcome: Sendable {
        /// How the program ended.
        public let termination: Termination
        /// Everything it wrote to stdout.
        public let stdout: String
        /// Everything it wrote to stderr.
        public let stderr: String

        /// The exit status, -1 when a signal ended it.
        public var status: Int32 { termination.exitStatus ?? -1 }
        /// stdout, line by line.
        public var lines: [String] { stdout.split(separator: "\n").map(String.init) }
    }

    /// Runs `executable` to completion with stdout and stderr captured in temporary files (no
    /// pipe can fill up), at most `limit` (then it is killed and this throws).
    public static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        workingDirectory: String? = nil,
        within limit: Duration = .seconds(120)
    ) throws -> Outcome {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loops-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let process = try SpawnedProcess(
            executable,
            arguments,
            environment: environment,
            workingDirectory: workingDirectory,
            stdout: .file("\(directory)/stdout"),
            stderr: .file("\(directory)/stderr")
        )
        guard let termination = process.waitBlocking(within: limit) else {
            process.kill()
            throw SpawnError("\(executable) \(arguments.joined(separator: " ")) did not end within \(limit)")
        }
        func contents(_ name: String) -> String {
            (try? String(contentsOfFile: "\(directory)/\(name)", encoding: .utf8)) ?? ""
        }
        return Outcome(termination: termination, stdout: contents("stdout"), stderr: contents("stderr"))
    }
}

/// A child that could not be started, or did not end in time.
public struct SpawnError: Error, CustomStringConvertible {
    /// What went wrong, naming the program.
    public let description: String

    /// An error saying `description`.
    public init(_ description: String) { self.description = description }
}
