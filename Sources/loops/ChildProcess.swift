import Dispatch
import Foundation
import Loops

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How a child process ended.
enum ChildTermination: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    /// The status a shell reports for it, and the one `loops run` exits with when it ends the
    /// loop: the exit code, or 128 + the signal number.
    var shellStatus: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    }

    var description: String {
        switch self {
        case .exited(let code): "exited with status \(code)"
        case .signaled(let signal): "was killed by signal \(signal) (\(Self.signalName(signal)))"
        }
    }

    /// `SIGKILL` for 9: the name a reader looks up, since numbers differ between architectures.
    static func signalName(_ number: Int32) -> String {
        let names: [Int32: String] = [
            SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
            SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGUSR1: "SIGUSR1",
            SIGSEGV: "SIGSEGV", SIGUSR2: "SIGUSR2", SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM",
            SIGCHLD: "SIGCHLD", SIGCONT: "SIGCONT", SIGSTOP: "SIGSTOP", SIGTSTP: "SIGTSTP", SIGTTIN: "SIGTTIN",
            SIGTTOU: "SIGTTOU", SIGURG: "SIGURG", SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ", SIGVTALRM: "SIGVTALRM",
            SIGPROF: "SIGPROF", SIGWINCH: "SIGWINCH", SIGIO: "SIGIO", SIGPWR: "SIGPWR", SIGSYS: "SIGSYS",
        ]
        // Real-time signals have no fixed names (glibc reserves the first few for itself).
        return names[number] ?? "a real-time or unknown signal"
    }
}

/// `posix_spawnp` refused the command (not found, not executable…).
struct SpawnError: Error, CustomStringConvertible {
    let command: String
    let errno: Int32

    /// 127 when the command was not found, 126 when it could not be executed, as env(1) and
    /// shells report.
    var shellStatus: Int32 { errno == ENOENT ? 127 : 126 }

    var description: String {
        "cannot run '\(command)': \(String(cString: strerror(errno)))"
    }
}

/// One run of the command: spawned with `posix_spawnp`, reaped on its own thread.
///
/// The child gets default dispositions for the signals `loops` ignores (SIGTERM, SIGINT…) and an
/// empty signal mask: ignored signals survive `exec`, and a child that ignored SIGTERM could not
/// be stopped. Its standard streams are those of `loops`.
///
/// The child leads a process group of its own, and SIGTERM/SIGKILL go to that group: a shell
/// script's own children end with it, as under systemd's `KillMode=control-group`, instead of
/// outliving a cancelled run. (A terminal's Ctrl-C therefore reaches `loops`, not the command
/// directly; `loops` turns it into the SIGTERM above.)
final class ChildProcess: Sendable {
    let pid: pid_t
    /// Set once the child has exited but before it is reaped, under the lock `terminate()` takes,
    /// so a signal never reaches a recycled PID.
    private let exited = LockedValue(false)

    private init(pid: pid_t) {
        self.pid = pid
    }

    /// Runs `arguments` to its end. Cancelling the calling task sends the child SIGTERM, and
    /// SIGKILL if it is still running `killAfter` later (`killed` is called with its PID just
    /// before, under a lock: it must be quick);
    /// the child is always waited for, then `CancellationError` is thrown.
    static func run(
        _ arguments: [String],
        environment: [String: String],
        killAfter: Duration,
        killed: @escaping @Sendable (pid_t) -> Void = { _ in }
    ) async throws -> ChildTermination {
        try Task.checkCancellation()
        let child = try spawn(arguments, environment: environment)
        let termination = await withTaskCancellationHandler {
            await child.waitForExit()
        } onCancel: {
            child.terminate(killAfter: killAfter, killed: killed)
        }
        try Task.checkCancellation()
        return termination
    }

    /// Sends SIGTERM to the child's process group unless the child has already exited, then
    /// SIGKILL after `grace` unless it has exited by then: a command that ignores or outlasts SIGTERM must not hold `loops`
    /// forever.
    func terminate(killAfter grace: Duration, killed: @escaping @Sendable (pid_t) -> Void) {
        let signalled = exited.withLock { exited in
            !exited && kill(-pid, SIGTERM) == 0
        }
        guard signalled else { return }
        let (seconds, attoseconds) = grace.components
        let nanoseconds = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        // A grace beyond Int64 nanoseconds (292 years) is as good as forever: saturate.
        let delay = nanoseconds.overflow ? Int64.max : nanoseconds.partialValue.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(clamping: max(delay, 0)))) { [self] in
            exited.withLock { exited in
                guard !exited else { return }
                // Reported before the signal: once the child is dead, loops may exit before a
                // report made afterwards is written.
                killed(pid)
                _ = kill(-pid, SIGKILL)
            }
        }
    }

    /// Why `command` cannot be spawned, checked before `loops` announces readiness: nil when
    /// `posix_spawnp` would find an executable file, else a one-line reason.
    ///
    /// Mirrors glibc's search: a name with a slash is used as is; otherwise each entry of
    /// `PATH` (an empty one is the current directory; `/bin:/usr/bin` when `PATH` is unset).
    static func problem(running command: String, path: String?) -> String? {
        func check(_ candidate: String) -> String? {
            var info = stat()
            guard stat(candidate, &info) == 0 else {
                return errno == ENOENT || errno == ENOTDIR ? "not found" : String(cString: strerror(errno))
            }
            if info.st_mode & S_IFMT == S_IFDIR { return "is a directory" }
            // access() alone is not enough for root, to whom it grants X_OK on files without any
            // execute bit (which exec still refuses).
            if info.st_mode & 0o111 == 0 { return "is not executable (no execute permission)" }
            if access(candidate, X_OK) != 0 { return "is not executable (\(String(cString: strerror(errno))))" }
            return nil
        }
        if command.contains("/") {
            return check(command).map { "cannot run '\(command)': \($0)" }
        }
        let search = path ?? "/bin:/usr/bin"
        var unusable: [String] = []
        for directory in search.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (directory.isEmpty ? "." : String(directory)) + "/" + command
            switch check(candidate) {
            case nil: return nil
            case "not found": continue
            case let reason?: unusable.append("\(candidate) \(reason)")
            }
        }
        if unusable.isEmpty {
            return "cannot run '\(command)': not found in PATH=\(search)"
        }
        return "cannot run '\(command)': " + unusable.joined(separator: "; ")
    }

    private static func spawn(_ arguments: [String], environment: [String: String]) throws -> ChildProcess {
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        // Group 0: a new group whose ID is the child's PID (setpgid(0, 0) before exec).
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))

        var pid: pid_t = 0
        let result = posix_spawnp(&pid, arguments[0], nil, &attributes, argv, envp)
        guard result == 0 else { throw SpawnError(command: arguments[0], errno: result) }
        return ChildProcess(pid: pid)
    }

    /// Waits on a dedicated thread: `waitid` blocks, and a blocked Dispatch worker would take
    /// one of the few threads the loop engine also needs.
    private func waitForExit() async -> ChildTermination {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread { [self] in
                continuation.resume(returning: self.blockUntilExit())
            }
        }
    }

    private func blockUntilExit() -> ChildTermination {
        // First wait without reaping, so that terminate() cannot signal a reused PID.
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == -1, errno == EINTR {}
        exited.withLock { $0 = true }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1, errno == EINTR {}
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
    }
}
