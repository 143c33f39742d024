import Foundation
import LoopsTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Kills what a test recorded in `name` (one PID a line) that is still one of its own processes:
/// a PID whose command line names the scratch directory. A bare PID may have been reused by the
/// time a test cleans up, and a test must never signal a process it did not start.
private func killLeftovers(_ scratch: Scratch, _ name: String) {
    for line in scratch.lines(name) {
        guard let pid = pid_t(line), pid > 1,
            let commandLine = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8),
            commandLine.contains(scratch.directory.path)
        else { continue }
        kill(pid, SIGKILL)
    }
}

/// What a standard stream of a `RawLoops` is.
private enum Stream {
    /// Not open at all, as after `>&-`.
    case closed
    /// A pipe-like stream whose reading end is closed before `loops` starts: every write fails
    /// with EPIPE (and raises SIGPIPE).
    case brokenPipe
    /// A file of the scratch directory.
    case file(String)
}

/// `loops` with standard streams a shell can give but `Process` cannot: closed, or a pipe
/// nobody reads. `finish()` waits with a limit and kills it (by PID) if it overstays.
private final class RawLoops {
    private let process: SpawnedProcess

    init(_ arguments: [String], stdout: Stream, stderr: Stream) throws {
        // One connected pair serves both streams. Both ends must be close-on-exec from their
        // creation, so that no child another test spawns meanwhile holds the reading end: Glibc
        // does not export pipe2, and socketpair with SOCK_CLOEXEC behaves like a pipe here
        // (a write after the peer closed fails with EPIPE and raises SIGPIPE).
        var ends: [Int32] = [-1, -1]
        var pipeWanted = false
        if case .brokenPipe = stdout { pipeWanted = true }
        if case .brokenPipe = stderr { pipeWanted = true }
        if pipeWanted {
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else {
                throw POSIXError(.init(rawValue: errno) ?? .EIO)
            }
            // No reader from the start.
            close(ends[0])
        }
        defer { if pipeWanted { close(ends[1]) } }
        func spawned(_ stream: Stream) -> SpawnedProcess.Stream {
            switch stream {
            case .closed: return .closed
            case .brokenPipe: return .descriptor(ends[1])
            case .file(let path): return .file(path)
            }
        }
        process = try SpawnedProcess(
            try loopsBinary().path,
            arguments,
            environment: SpawnedProcess.environment(with: ["NOTIFY_SOCKET": nil, "WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]),
            stdout: spawned(stdout),
            stderr: spawned(stderr)
        )
    }

    /// How `loops` ended: exited with a status, or killed by a signal; nil when it did not end
    /// within `limit` (it is then killed).
    func finish(within limit: Duration = .seconds(10)) async -> (exited: Int32?, signal: Int32?)? {
        switch await process.finish(within: limit) {
        case .exited(let status): return (status, nil)
        case .signaled(let signal): return (nil, signal)
        case nil: return nil
        }
    }
}

@Suite("loops run under faults")
struct RunCommandFaultTests {
    // MARK: A run killed by a signal

    @Test func aRunKilledByASignalEndsTheLoopWith128PlusN() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let socket = try NotifyListener(path: scratch.path("notify"))
        defer { socket.cleanUp() }
        let loops = try LoopsProcess(
            ["run", "--every", "100ms", "--", "/bin/sh", "-c", "echo run >> '\(scratch.path("log"))'; kill -KILL $$"],
            scratch: scratch,
            environment: ["NOTIFY_SOCKET": socket.path]
        )
        let messages = await socket.receive(until: .now + .seconds(10)) { $0.contains { $0.message == "STOPPING=1" } }
        #expect(await loops.finish() == 128 + SIGKILL)
        #expect(scratch.lines("log") == ["run"])
        #expect(loops.stderrLines.count == 1, "\(loops.stderrLines)")
        #expect(loops.stderrLines.first?.hasSuffix("was killed by signal 9 (SIGKILL); stopping") == true, "\(loops.stderrLines)")
        #expect(messages.map(\.message).contains("STATUS=Run 1 was killed by signal 9 (SIGKILL)"), "\(messages.map(\.message))")
    }

    /// 128 + N is the run's status for `--retry-exit-codes` too, as a shell would report it.
    @Test func aSignalStatusListedInRetryExitCodesIsRetried() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let marker = scratch.path("killed-once")
        let script = "if [ -e '\(marker)' ]; then echo ok >> '\(scratch.path("done"))'; else touch '\(marker)'; kill -KILL $$; fi"
        let loops = try LoopsProcess(
            ["run", "--every", "100ms", "--count", "1", "--retry-exit-codes", "137", "--", "/bin/sh", "-c", script],
            scratch: scratch
        )
        // The back-off after the failure is up to 2 s (full jitter).
        #expect(await loops.finish() == 0)
        #expect(scratch.lines("done") == ["ok"])
        #expect(loops.stderrLines.count == 1, "\(loops.stderrLines)")
        #expect(loops.stderrLines.first?.hasSuffix("was killed by signal 9 (SIGKILL); retrying after a back-off") == true)
    }

    // MARK: A run that ignores SIGTERM

    @Test func sigintKillsARunThatIgnoresSigtermAfterKillAfter() async throws {
        let scratch = try Scratch()
        defer {
            killLeftovers(scratch, "pid")
            scratch.cleanUp()
        }
        let log = scratch.path("log")
        // Ignores SIGTERM; its short sleeps end on their own once the shell is gone.
        let script = "echo $$ >> '\(scratch.path("pid"))'; trap '' TERM; echo start >> '\(log)'; while :; do sleep 0.05; done"
        let loops = try LoopsProcess(
            ["run", "--every", "100ms", "--kill-after", "300ms", "--", "/bin/sh", "-c", script],
            scratch: scratch
        )
        await waitUntil { scratch.lines("log") == ["start"] }
        try #require(scratch.lines("log") == ["start"])
        let signalled = ContinuousClock.now
        loops.signal(SIGINT)
        let status = await loops.finish()
        let elapsed = ContinuousClock.now - signalled
        #expect(status == 130)
        // SIGKILL comes 300 ms after the SIGTERM, which follows the SIGINT: an exact lower bound.
        #expect(elapsed >= .milliseconds(300), "\(elapsed)")
        #expect(elapsed < .seconds(5), "\(elapsed)")
        #expect(scratch.lines("log") == ["start"])
        let pid = try #require(scratch.lines("pid").first)
        #expect(loops.stderrLines == ["loops: '/bin/sh -c \(script)' (pid \(pid)) did not exit within 300ms of SIGTERM; sending SIGKILL"])
    }

    @Test func aRunThatHonoursSigtermIsNotKilled() async throws {
        // The shell's stderr goes to /dev/null: its `sleep` gets the SIGTERM too (the command's
        // process group does), and sh reports that on stderr; this test checks what loops says.
        let scratch = try Scratch()
        defer {
            killLeftovers(scratch, "pid")
            scratch.cleanUp()
        }
        let log = scratch.path("log")
        let script = """
            exec 2>/dev/null; echo $$ >> '\(scratch.path("pid"))'; \
            trap 'echo terminated >> "\(log)"; exit 143' TERM; \
            echo start >> '\(log)'; while :; do sleep 0.05; done
            """
        let loops = try LoopsProcess(
            ["run", "--every", "100ms", "--kill-after", "5s", "--", "/bin/sh", "-c", script],
            scratch: scratch
        )
        await waitUntil { scratch.lines("log") == ["start"] }
        try #require(scratch.lines("log") == ["start"])
        let signalled = ContinuousClock.now
        loops.signal(SIGINT)
        #expect(await loops.finish() == 130)
        #expect(ContinuousClock.now - signalled < .seconds(4), "it waited for the kill-after")
        #expect(scratch.lines("log") == ["start", "terminated"])
        #expect(loops.stderrLines.isEmpty, "\(loops.stderrLines)")
    }

    @Test func cancellingARunEndsTheCommandsOwnChildrenToo() async throws {
        let scratch = try Scratch()
        defer {
            killLeftovers(scratch, "pid")
            scratch.cleanUp()
        }
        // The script starts a child of its own (its command line names the scratch directory,
        // so the clean-up can recognise it; its streams are not the test's pipes, so a surviving
        // child cannot hold `loops`' output open) and waits for it.
        let script = """
            /bin/sh -c 'while :; do sleep 0.05; done' '\(scratch.directory.path)' </dev/null >/dev/null 2>&1 &
            echo $! >> '\(scratch.path("pid"))'; echo $$ >> '\(scratch.path("pid"))'
            echo start >> '\(scratch.path("log"))'; wait
            """
        let loops = try LoopsProcess(
            ["run", "--every", "100ms", "--kill-after", "5s", "--", "/bin/sh", "-c", script],
            scratch: scratch
        )
        await waitUntil { scratch.lines("log") == ["start"] && scratch.lines("pid").count == 2 }
        try #require(scratch.lines("pid").count == 2)
        let grandchild = try #require(pid_t(scratch.lines("pid")[0]))
        loops.signal(SIGINT)
        #expect(await loops.finish() == 130)
        // The grandchild got the SIGTERM too: gone, or a zombie waiting for its new parent.
        func ended() -> Bool {
            guard let stat = try? String(contentsOfFile: "/proc/\(grandchild)/stat", encoding: .utf8) else { return true }
            guard let close = stat.lastIndex(of: ")") else { return true }
            return stat[stat.index(close, offsetBy: 2)] == "Z"
        }
        await waitUntil { ended() }
        #expect(ended(), "the command's own child outlived the cancelled run")
        #expect(loops.stderrLines.isEmpty, "\(loops.stderrLines)")
    }

    @Test(arguments: ["0s", "0ms", "soon", "-1s", "10", "1x"])
    func aBadKillAfterIsOneLineAndStatusTwo(value: String) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let loops = try LoopsProcess(
            ["run", "--every", "1s", "--kill-after=\(value)", "--", "/bin/sh", "-c", "echo run >> '\(scratch.path("log"))'"],
            scratch: scratch
        )
        #expect(await loops.finish() == 2)
        #expect(loops.stderrLines.count == 1, "\(loops.stderrLines)")
        #expect(loops.stderrLines.first?.hasPrefix("loops: error: --kill-after") == true, "\(loops.stderrLines)")
        #expect(scratch.lines("log").isEmpty)
    }

    @Test func theKillAfterDefaultIsTenSeconds() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let help = try LoopsProcess(["run", "--help"], scratch: scratch)
        #expect(await help.finish() == 0)
        let text = scratch.lines("stdout").joined(separator: " ")
        #expect(text.contains("--kill-after <duration>"), "\(text)")
        #expect(text.contains("(default: 10s)"), "\(text)")
    }

    // MARK: A command that cannot run

    /// Not found, a directory, not executable: one line, status 2, and nothing reaches the
    /// notification socket (READY=1 is never sent, so systemd sees a failed start).
    @Test(arguments: ["missing-absolute", "missing-in-path", "directory", "not-executable"])
    func aCommandThatCannotRunIsOneLineAndStatusTwoBeforeReady(kind: String) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let socket = try NotifyListener(path: scratch.path("notify"))
        defer { socket.cleanUp() }
        let command: String
        switch kind {
        case "missing-absolute":
            command = scratch.path("no-such-command")
        case "missing-in-path":
            command = "loops-no-such-command-\(UUID().uuidString.prefix(8))"
        case "directory":
            command = scratch.directory.path
        default:
            command = scratch.path("plain-file")
            try "#!/bin/sh\necho run >> '\(scratch.path("log"))'\n".write(toFile: command, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: command)
        }
        let loops = try LoopsProcess(
            ["run", "--every", "100ms", "--", command],
            scratch: scratch,
            environment: ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "100000"]
        )
        #expect(await loops.finish() == 2)
        #expect(loops.stderrLines.count == 1, "\(loops.stderrLines)")
        #expect(loops.stderrLines.first?.hasPrefix("loops: error: cannot run '\(command)': ") == true, "\(loops.stderrLines)")
        // loops has exited: anything it sent is queued in the socket already.
        let messages = await socket.receive(until: .now + .milliseconds(50))
        #expect(messages.isEmpty, "\(messages.map(\.message))")
        #expect(scratch.lines("log").isEmpty)
    }

    /// A command that was there at start-up but is gone at a later run: 127, as a shell says.
    @Test func aCommandThatVanishesLaterIs127() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        // A symbolic link to the shell, not a script written here: a file this process wrote
        // can be "busy" (ETXTBSY) while a child another test forks meanwhile inherits it.
        let command = scratch.path("once")
        try FileManager.default.createSymbolicLink(atPath: command, withDestinationPath: "/bin/sh")
        let script = "echo run >> '\(scratch.path("log"))'; rm -f '\(command)'"
        let loops = try LoopsProcess(["run", "--every", "100ms", "--", command, "-c", script], scratch: scratch)
        #expect(await loops.finish() == 127)
        #expect(scratch.lines("log") == ["run"])
        #expect(loops.stderrLines == ["loops: cannot run '\(command)': No such file or directory"])
    }

    // MARK: Standard output closed or broken

    /// `loops run … >&-`: the runs get `/dev/null` as stdout (not a closed descriptor, nor a
    /// descriptor loops opened since), their writes succeed, and loops runs normally.
    @Test func aClosedStdoutIsDevNullForTheRuns() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        // dash applies a command's redirections in the shell itself, so the shell's stdout is
        // read from a command substitution (whose $$ is still the shell) before any is made.
        let script = "out=$(readlink /proc/$$/fd/1); echo \"$out\" >> '\(scratch.path("log"))'; echo written"
        let loops = try RawLoops(
            ["run", "--every", "100ms", "--count", "2", "--", "/bin/sh", "-c", script],
            stdout: .closed,
            stderr: .file(scratch.path("stderr"))
        )
        let ending = await loops.finish()
        #expect(ending?.exited == 0, "\(String(describing: ending)), stderr: \(scratch.lines("stderr"))")
        #expect(scratch.lines("log") == ["/dev/null", "/dev/null"])
        #expect(scratch.lines("stderr").isEmpty, "\(scratch.lines("stderr"))")
    }

    /// stdout a pipe nobody reads: a run that does not write to it runs normally; one that does
    /// dies of SIGPIPE, as it would in a shell pipeline, and loops reports 128 + 13.
    @Test func aBrokenStdoutPipeIsTheRunsStdout() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let quiet = try RawLoops(
            ["run", "--every", "100ms", "--count", "2", "--", "/bin/sh", "-c", "echo run >> '\(scratch.path("quiet"))'"],
            stdout: .brokenPipe,
            stderr: .file(scratch.path("quiet-stderr"))
        )
        let quietEnding = await quiet.finish()
        #expect(quietEnding?.exited == 0, "\(String(describing: quietEnding)), stderr: \(scratch.lines("quiet-stderr"))")
        #expect(scratch.lines("quiet") == ["run", "run"])
        #expect(scratch.lines("quiet-stderr").isEmpty)

        let writer = try RawLoops(
            ["run", "--every", "100ms", "--", "/bin/sh", "-c", "echo run >> '\(scratch.path("writer"))'; echo hello"],
            stdout: .brokenPipe,
            stderr: .file(scratch.path("writer-stderr"))
        )
        let writerEnding = await writer.finish()
        #expect(writerEnding?.exited == 128 + SIGPIPE, "\(String(describing: writerEnding))")
        #expect(scratch.lines("writer") == ["run"])
        #expect(scratch.lines("writer-stderr").count == 1, "\(scratch.lines("writer-stderr"))")
        #expect(scratch.lines("writer-stderr").first?.hasSuffix("was killed by signal 13 (SIGPIPE); stopping") == true)
    }

    /// stdout and stderr both pipes nobody reads: loops' own report fails with EPIPE, and loops
    /// still exits with the run's status instead of dying of SIGPIPE.
    @Test func aBrokenStderrNeverKillsLoops() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let loops = try RawLoops(
            ["run", "--every", "100ms", "--", "/bin/sh", "-c", "echo run >> '\(scratch.path("log"))'; exit 3"],
            stdout: .brokenPipe,
            stderr: .brokenPipe
        )
        let ending = await loops.finish()
        #expect(ending?.signal == nil, "loops was killed by signal \(String(describing: ending?.signal))")
        #expect(ending?.exited == 3, "\(String(describing: ending))")
        #expect(scratch.lines("log") == ["run"])
    }

    // MARK: NOTIFY_SOCKET pointing nowhere

    /// No socket at the path, or a socket file nobody listens on any more: READY=1, every
    /// STATUS=, keep-alive (every 50 ms here) and STOPPING=1 fail, and all that is one warning;
    /// the runs go on and SIGTERM still ends loops cleanly.
    @Test(arguments: ["missing", "stale"])
    func aNotifySocketThatLeadsNowhereIsOneWarning(kind: String) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let path = scratch.path("notify")
        if kind == "stale" {
            try leaveStaleSocket(at: path)
        }
        let loops = try LoopsProcess(
            ["run", "--every", "100ms", "--", "/bin/sh", "-c", "echo run >> '\(scratch.path("log"))'"],
            scratch: scratch,
            environment: ["NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"]
        )
        await waitUntil(.seconds(10)) { scratch.lines("log").count >= 4 }
        #expect(scratch.lines("log").count >= 4, "the loop did not keep running: \(loops.stderrLines)")
        loops.signal(SIGTERM)
        #expect(await loops.finish() == 0)
        #expect(loops.stderrLines.count == 1, "\(loops.stderrLines)")
        let line = loops.stderrLines.first ?? ""
        #expect(line.hasPrefix("loops: warning: cannot notify systemd at NOTIFY_SOCKET=\(path): "), "\(line)")
        #expect(line.contains(kind == "stale" ? "(errno \(ECONNREFUSED))" : "(errno \(ENOENT))"), "\(line)")
    }
}

/// Binds an AF_UNIX datagram socket at `path` and closes it: the file stays and nothing listens,
/// as after a service manager died.
private func leaveStaleSocket(at path: String) throws {
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    withUnsafeMutableBytes(of: &address.sun_path) { buffer in
        for (index, byte) in bytes.enumerated() where index < buffer.count - 1 { buffer[index] = byte }
    }
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
        }
    }
    guard result == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
}
