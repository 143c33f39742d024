import Foundation
import LoopsTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

// The helpers below are shared with RunCommandFaultTests.swift.

/// A temporary directory for one test, removed with everything in it by `cleanUp()`.
struct Scratch {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("loops-run-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func lines(_ name: String) -> [String] {
        (try? String(contentsOfFile: path(name), encoding: .utf8))?.split(separator: "\n").map(String.init) ?? []
    }

    func cleanUp() { try? FileManager.default.removeItem(at: directory) }
}

/// A running `loops run`, its output in files of the scratch directory; `finish()` waits with a
/// limit and kills it (by PID) if it overstays.
final class LoopsProcess {
    let process: SpawnedProcess
    private let scratch: Scratch

    init(_ arguments: [String], scratch: Scratch, environment: [String: String] = [:]) throws {
        self.scratch = scratch
        // Only what the test gives: the test process may itself run under systemd.
        var changes: [String: String?] = ["NOTIFY_SOCKET": nil, "WATCHDOG_USEC": nil, "WATCHDOG_PID": nil]
        for (key, value) in environment { changes[key] = value }
        process = try SpawnedProcess(
            try loopsBinary().path,
            arguments,
            environment: SpawnedProcess.environment(with: changes),
            stdout: .file(scratch.path("stdout")),
            stderr: .file(scratch.path("stderr"))
        )
    }

    var stderrLines: [String] { scratch.lines("stderr") }

    func signal(_ number: Int32) { process.signal(number) }

    /// The exit status — the signal's number when a signal ended it, see ``endedBySignal`` —
    /// or nil when it did not exit within `limit` (it is then killed).
    func finish(within limit: Duration = .seconds(10)) async -> Int32? {
        switch await process.finish(within: limit) {
        case .exited(let status): return status
        case .signaled(let signal): return signal
        case nil: return nil
        }
    }

    /// Whether a signal ended it.
    var endedBySignal: Bool {
        if case .signaled = process.poll() { return true }
        return false
    }
}

/// Waits until `condition` holds or `limit` passes.
func waitUntil(_ limit: Duration = .seconds(5), _ condition: () -> Bool) async {
    let deadline = ContinuousClock.now + limit
    while !condition(), ContinuousClock.now < deadline {
        try? await Task.sleep(for: .milliseconds(10))
    }
}

/// Kills a shell's process (and its `sleep`) that a test recorded, should a test fail midway.
func killRecorded(_ scratch: Scratch, _ name: String) {
    for line in scratch.lines(name) {
        if let pid = pid_t(line), pid > 1 { kill(pid, SIGKILL) }
    }
}

@Suite("loops run")
struct RunCommandTests {
    @Test func runsTheCommandCountTimesOnTheSchedule() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let runs = scratch.path("runs")
        let ends = scratch.path("ends")
        let started = Date()
        let loops = try LoopsProcess(
            ["run", "--every", "100ms", "--count", "3", "--", "/bin/sh", "-c", "date +%s.%N >> '\(runs)'; date +%s.%N >> '\(ends)'"],
            scratch: scratch
        )
        let status = await loops.finish()
        #expect(status == 0)
        let stamps = scratch.lines("runs").compactMap(Double.init)
        let endStamps = scratch.lines("ends").compactMap(Double.init)
        try #require(stamps.count == 3 && endStamps.count == 3, "runs: \(scratch.lines("runs")), stderr: \(loops.stderrLines)")
        #expect(stamps[0] >= started.timeIntervalSince1970 - 0.001)
        // Runs on the 100 ms grid from a start after `started`: run n cannot begin before
        // started + n·100 ms (so runs that are on time are never back to back), and never before
        // the previous one has ended. A stamp also carries the spawn latency, which a loaded
        // machine stretches without bound, so only these lower bounds are exact: a late run is
        // followed at once by the next (the .delay policy), which is not an error.
        let origin = started.timeIntervalSince1970
        #expect(stamps[1] - origin >= 0.1 && stamps[2] - origin >= 0.2, "\(stamps.map { $0 - origin })")
        for index in 1..<3 {
            #expect(stamps[index] >= endStamps[index - 1], "run \(index) began before run \(index - 1) ended")
        }
        #expect(stamps[2] - origin < 2, "three runs 100 ms apart took \(stamps[2] - origin) s")
    }

    @Test func listedExitCodesAreRetriedOthersEndTheLoop() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let marker = scratch.path("failed-once")
        let done = scratch.path("done")
        // Fails with 75 the first time, then succeeds.
        let script = "if [ -e '\(marker)' ]; then echo ok >> '\(done)'; else touch '\(marker)'; exit 75; fi"
        let retried = try LoopsProcess(
            ["run", "--every", "100ms", "--count", "2", "--retry-exit-codes", "75,111", "--", "/bin/sh", "-c", script],
            scratch: scratch
        )
        // The back-off after the first failure is up to 2 s (full jitter).
        #expect(await retried.finish() == 0)
        #expect(scratch.lines("done") == ["ok", "ok"])
        #expect(retried.stderrLines.count == 1 && retried.stderrLines[0].contains("status 75"))

        let failing = try LoopsProcess(
            ["run", "--every", "100ms", "--retry-exit-codes", "75", "--", "/bin/sh", "-c", "echo run >> '\(scratch.path("failing"))'; exit 3"],
            scratch: scratch
        )
        #expect(await failing.finish() == 3)
        #expect(scratch.lines("failing") == ["run"])
        #expect(failing.stderrLines.count == 1 && failing.stderrLines[0].contains("status 3"))

        // Bad input since the command is checked at start-up (RunCommandFaultTests has more).
        let missing = try LoopsProcess(["run", "--every", "1s", "--", scratch.path("no-such-command")], scratch: scratch)
        #expect(await missing.finish() == 2)
        #expect(missing.stderrLines.count == 1)
    }

    @Test func sigtermLetsTheRunningCommandFinish() async throws {
        let scratch = try Scratch()
        defer {
            killRecorded(scratch, "pid")
            scratch.cleanUp()
        }
        let log = scratch.path("log")
        let script = "echo $$ >> '\(scratch.path("pid"))'; echo start >> '\(log)'; sleep 0.5; echo end >> '\(log)'; "
            + "date +%s.%N > '\(scratch.path("ended"))'"
        let loops = try LoopsProcess(["run", "--every", "100ms", "--", "/bin/sh", "-c", script], scratch: scratch)
        await waitUntil { scratch.lines("log") == ["start"] }
        try #require(scratch.lines("log") == ["start"])
        loops.signal(SIGTERM)
        let status = await loops.finish()
        let exited = Date().timeIntervalSince1970
        #expect(status == 0)
        // The child finished (it had up to 0.5 s left) before loops exited, and no further run
        // started. (Measured against the child's own end, not a guess of how long it had left.)
        #expect(scratch.lines("log") == ["start", "end"])
        let ended = try #require(scratch.lines("ended").first.flatMap(Double.init), "the child did not finish")
        #expect(ended <= exited, "loops exited \(ended - exited) s before its command ended")
    }

    @Test func sigtermBetweenRunsExitsAtOnce() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let loops = try LoopsProcess(
            ["run", "--every", "1h", "--", "/bin/sh", "-c", "echo run >> '\(scratch.path("log"))'"],
            scratch: scratch
        )
        await waitUntil { scratch.lines("log") == ["run"] }
        try await Task.sleep(for: .milliseconds(100))
        let signalled = ContinuousClock.now
        loops.signal(SIGTERM)
        #expect(await loops.finish() == 0)
        #expect(ContinuousClock.now - signalled < .seconds(2))
        #expect(scratch.lines("log") == ["run"])
    }

    /// A SIGTERM at any moment of start-up ends loops: killed by it (before loops handles it)
    /// or exit 0; never ignored, which would leave loops waiting for the next hour.
    @Test func sigtermDuringStartUpIsNeverLost() async throws {
        for step in 0..<25 {
            let scratch = try Scratch()
            defer { scratch.cleanUp() }
            let loops = try LoopsProcess(
                ["run", "--every", "1h", "--", "/bin/sh", "-c", "echo run >> '\(scratch.path("log"))'"],
                scratch: scratch
            )
            try await Task.sleep(for: .milliseconds(step * 4))
            loops.signal(SIGTERM)
            let status = await loops.finish(within: .seconds(5))
            let killed = loops.endedBySignal && status == SIGTERM
            #expect(killed || status == 0, "SIGTERM after \(step * 4) ms: status \(String(describing: status)), \(loops.stderrLines)")
            #expect(scratch.lines("log").count <= 1)
        }
    }

    @Test func sigintTerminatesTheRunningCommand() async throws {
        let scratch = try Scratch()
        defer {
            killRecorded(scratch, "pid")
            scratch.cleanUp()
        }
        let log = scratch.path("log")
        // The shell reports SIGTERM, ends its sleep and exits; without SIGTERM it would run 30 s.
        let script = """
            echo $$ >> '\(scratch.path("pid"))'; \
            trap 'kill $!; echo terminated >> "\(log)"; exit 143' TERM; \
            echo start >> '\(log)'; sleep 30 & echo $! >> '\(scratch.path("pid"))'; wait $!
            """
        let loops = try LoopsProcess(["run", "--every", "100ms", "--", "/bin/sh", "-c", script], scratch: scratch)
        await waitUntil { scratch.lines("log") == ["start"] && scratch.lines("pid").count == 2 }
        try #require(scratch.lines("log") == ["start"])
        let signalled = ContinuousClock.now
        loops.signal(SIGINT)
        let status = await loops.finish()
        #expect(status == 130)
        #expect(scratch.lines("log") == ["start", "terminated"])
        #expect(ContinuousClock.now - signalled < .seconds(5))
    }

    @Test(arguments: [
        ["run", "--every", "1s"],
        ["run", "--every", "1s", "--", ""],
        ["run", "--every", "soon", "--", "/bin/true"],
        ["run", "--count", "0", "--every", "1s", "--", "/bin/true"],
        ["run", "--retry-exit-codes", "75,x", "--every", "1s", "--", "/bin/true"],
        ["run", "--retry-exit-codes", "256", "--every", "1s", "--", "/bin/true"],
        ["run", "--every", "1s", "/bin/true"],
        ["run", "--", "/bin/true"],
    ])
    func badInputIsOneLineAndStatusTwo(arguments: [String]) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let loops = try LoopsProcess(arguments, scratch: scratch)
        #expect(await loops.finish() == 2)
        #expect(loops.stderrLines.count == 1, "\(loops.stderrLines)")
        #expect(loops.stderrLines.first?.hasPrefix("loops: error: ") == true)
        #expect(scratch.lines("stdout").isEmpty)
    }

    /// A schedule in the local zone with a TZ that names no zone: one line naming TZ, status 2,
    /// and the command never runs (not even once in a wrong zone).
    @Test func aTZRuleStringIsBadInput() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let tz = "CET-1CEST,M3.5.0,M10.5.0/3"
        for schedule in [["--cron", "* * * * *"], ["--calendar", "minutely"]] {
            let loops = try LoopsProcess(
                ["run"] + schedule + ["--", "/bin/sh", "-c", "echo run >> '\(scratch.path("log"))'"],
                scratch: scratch,
                environment: ["TZ": tz]
            )
            #expect(await loops.finish() == 2, "\(schedule)")
            #expect(loops.stderrLines == ["loops: error: TZ='\(tz)' is a POSIX rule string; loops needs a zone name such as America/New_York or Europe/Berlin"])
            #expect(scratch.lines("log").isEmpty)
        }
    }

    /// READY=1 is the first message and nothing follows STOPPING=1 when the loop ends by
    /// --count, even with keep-alives every half millisecond racing the start and the end.
    @Test func readyIsFirstAndStoppingLastUnderAFastWatchdog() async throws {
        for attempt in 1...20 {
            let scratch = try Scratch()
            defer { scratch.cleanUp() }
            let socket = try NotifyListener(path: scratch.path("notify"))
            defer { socket.cleanUp() }
            let loops = try LoopsProcess(
                ["run", "--every", "1h", "--count", "1", "--", "/bin/true"],
                scratch: scratch,
                environment: ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "1000"]
            )
            let untilStopping = await socket.receive(until: .now + .seconds(5)) { $0.contains { $0.message == "STOPPING=1" } }
            #expect(await loops.finish() == 0)
            // loops has exited, so all it sent is queued in the socket: read what is left.
            let rest = await socket.receive(until: .now + .milliseconds(50))
            let texts = (untilStopping + rest).map(\.message)
            #expect(texts.first?.hasPrefix("READY=1") == true, "attempt \(attempt): \(texts.prefix(5))")
            #expect(texts.last == "STOPPING=1", "attempt \(attempt): \(texts.suffix(5))")
            #expect(texts.filter { $0 == "STOPPING=1" }.count == 1, "attempt \(attempt)")
        }
    }

    @Test func notifiesSystemdAndFeedsTheWatchdog() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let socket = try NotifyListener(path: scratch.path("notify"))
        defer { socket.cleanUp() }
        let loops = try LoopsProcess(
            ["run", "--every", "100ms", "--count", "6", "--", "/bin/sh", "-c", "echo \"[$NOTIFY_SOCKET][$WATCHDOG_USEC]\" >> '\(scratch.path("env"))'"],
            scratch: scratch,
            environment: ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "400000"]
        )
        let messages = await socket.receive(until: .now + .seconds(5)) { $0.contains { $0.message == "STOPPING=1" } }
        #expect(await loops.finish() == 0)
        let texts = messages.map(\.message)
        #expect(texts.first?.hasPrefix("READY=1") == true, "\(texts)")
        #expect(texts.last == "STOPPING=1", "\(texts)")
        #expect(texts.filter { $0.hasPrefix("STATUS=Run ") && $0.contains("running") }.count == 6, "\(texts)")
        #expect(texts.filter { $0.hasPrefix("STATUS=Run ") && $0.contains("status 0") }.count == 6, "\(texts)")
        // Six runs 100 ms apart take ~500 ms: pings every ~200 ms (WATCHDOG_USEC/2), the first at
        // start; never a gap within 25 ms of the 400 ms deadline.
        let pings = messages.filter { $0.message == "WATCHDOG=1" }
        #expect(pings.count >= 2, "\(texts)")
        let gaps = zip(pings.dropFirst(), pings).map { $0.at - $1.at }
        #expect((gaps.max() ?? .zero) < .milliseconds(375), "\(gaps)")
        // The runs do not see the variables that address loops itself.
        #expect(scratch.lines("env").count == 6)
        #expect(scratch.lines("env").allSatisfy { $0 == "[][]" })
    }
}

/// An AF_UNIX datagram socket standing in for systemd's notification socket.
final class NotifyListener: Sendable {
    let path: String
    private let fd: Int32

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
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
        guard result == 0 else {
            let code = errno
            close(fd)
            throw POSIXError(.init(rawValue: code) ?? .EIO)
        }
    }

    /// Closes and removes the socket; call once, when the test is done.
    func cleanUp() {
        close(fd)
        unlink(path)
    }

    /// Datagrams with their arrival instants, until `deadline` or until `stop` holds; the
    /// waiting happens on a thread of its own, so the loops under test keep the task pool.
    func receive(
        until deadline: ContinuousClock.Instant,
        stop: @escaping @Sendable ([(message: String, at: ContinuousClock.Instant)]) -> Bool = { _ in false }
    ) async -> [(message: String, at: ContinuousClock.Instant)] {
        await withCheckedContinuation { continuation in
            let fd = fd
            Thread.detachNewThread {
                continuation.resume(returning: Self.blockingReceive(fd: fd, until: deadline, stop: stop))
            }
        }
    }

    /// Datagrams with their arrival instants, until `deadline` or until `stop` holds.
    private static func blockingReceive(
        fd: Int32,
        until deadline: ContinuousClock.Instant,
        stop: @Sendable ([(message: String, at: ContinuousClock.Instant)]) -> Bool
    ) -> [(message: String, at: ContinuousClock.Instant)] {
        var received: [(message: String, at: ContinuousClock.Instant)] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !stop(received) {
            let remaining = deadline - .now
            guard remaining > .zero else { break }
            let milliseconds = Int32(clamping: remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000 + 1)
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, milliseconds) > 0 else { continue }
            let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if count > 0 {
                received.append((String(decoding: buffer[0..<count], as: UTF8.self), .now))
            }
        }
        return received
    }
}
