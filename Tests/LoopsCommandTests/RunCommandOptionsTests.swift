import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `LOOPS_SCHEDULED_AT` (`YYYY-MM-DDTHH:MM:SS.ffffffZ`) as seconds since 1970; nil when the text
/// has another form.
private func scheduledAt(_ text: Substring) -> Double? {
    let pattern = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})Z$/
    guard let match = text.wholeMatch(of: pattern) else { return nil }
    var components = DateComponents()
    components.timeZone = TimeZone(identifier: "UTC")
    components.year = Int(match.1)
    components.month = Int(match.2)
    components.day = Int(match.3)
    components.hour = Int(match.4)
    components.minute = Int(match.5)
    components.second = Int(match.6)
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    guard let date = calendar.date(from: components), let micro = Double(match.7) else { return nil }
    return date.timeIntervalSince1970 + micro / 1e6
}

/// The fixed randomized delay of a loop named `name` with `maximum` nanoseconds: FNV-1a of the
/// name's UTF-8 bytes modulo maximum + 1, as `RandomizedDelay.fixed(upTo:)` documents.
private func fixedDelay(name: String, maximum: UInt64) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in name.utf8 {
        hash ^= UInt64(byte)
        hash &*= 0x0000_0100_0000_01b3
    }
    return hash % (maximum + 1)
}

/// The options of `loops run` from issue 10 (`--name`, `--timeout`, `--stall-timeout`,
/// `--randomized-delay`, `--fixed-random-delay`, `--on-failure`, `--metrics-file`) and the
/// environment of the command, against the real binary.
@Suite("loops run options")
struct RunCommandOptionsTests {
    /// LOOPS_NAME (given, or the command's basename), LOOPS_ITERATION (0, 1, 2) and
    /// LOOPS_SCHEDULED_AT: the slot in UTC with microseconds, on the 300 ms grid from the start,
    /// never after the run began.
    @Test func theCommandSeesItsNameIterationAndSlot() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let started = Date().timeIntervalSince1970
        let script = "echo \"$LOOPS_NAME|$LOOPS_ITERATION|$LOOPS_SCHEDULED_AT|$(date +%s.%N)\" >> '\(scratch.path("env"))'"
        let named = try LoopsProcess(["run", "--every", "300ms", "--count", "3", "--name", "nightly backup", "--", "/bin/sh", "-c", script], scratch: scratch)
        #expect(await named.finish() == 0)
        let lines = scratch.lines("env").map { $0.split(separator: "|", omittingEmptySubsequences: false) }
        try #require(lines.count == 3 && lines.allSatisfy { $0.count == 4 }, "\(scratch.lines("env")) \(named.stderrLines)")
        #expect(lines.map { String($0[0]) } == ["nightly backup", "nightly backup", "nightly backup"])
        #expect(lines.map { String($0[1]) } == ["0", "1", "2"])
        let slots = lines.compactMap { scheduledAt($0[2]) }
        try #require(slots.count == 3, "LOOPS_SCHEDULED_AT: \(lines.map { $0[2] })")
        let ran = lines.compactMap { Double($0[3]) }
        #expect(slots[0] >= started - 0.001, "the first slot is the start")
        for index in 0..<3 {
            #expect(slots[index] <= ran[index] + 0.001, "slot \(index) after its run began: \(slots) \(ran)")
        }
        // The grid: each slot at least 300 ms after the previous one (exactly, unless a run was
        // late enough to delay the next), never more than a late run's worth.
        for index in 1..<3 {
            let step = slots[index] - slots[index - 1]
            #expect(step >= 0.3 - 0.001 && step < 3, "slots \(slots)")
        }

        // Without --name: the command's basename.
        let unnamed = try LoopsProcess(["run", "--every", "1h", "--count", "1", "--", "/bin/sh", "-c", "echo \"$LOOPS_NAME\" > '\(scratch.path("name"))'"], scratch: scratch)
        #expect(await unnamed.finish() == 0)
        #expect(scratch.lines("name") == ["sh"])
    }

    /// `--randomized-delay 1s --fixed-random-delay`: every run starts its loop's fixed delay
    /// (a function of the name) after its slot, and the slots stay on the grid.
    @Test func aFixedRandomDelayDelaysEveryRunByTheSameOffset() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        // A name whose fixed delay within 1 s is between 400 and 900 ms.
        let name = try #require((0..<10_000).lazy.map { "job-\($0)" }.first {
            (400_000_000...900_000_000).contains(fixedDelay(name: $0, maximum: 1_000_000_000))
        })
        let delay = Double(fixedDelay(name: name, maximum: 1_000_000_000)) / 1e9
        let script = "echo \"$LOOPS_SCHEDULED_AT|$(date +%s.%N)\" >> '\(scratch.path("runs"))'"
        let loops = try LoopsProcess(
            ["run", "--every", "1500ms", "--count", "2", "--name", name, "--randomized-delay", "1s", "--fixed-random-delay", "--", "/bin/sh", "-c", script],
            scratch: scratch
        )
        #expect(await loops.finish(within: .seconds(15)) == 0, "\(loops.stderrLines)")
        let runs = scratch.lines("runs").map { $0.split(separator: "|") }
        try #require(runs.count == 2 && runs.allSatisfy { $0.count == 2 }, "\(scratch.lines("runs"))")
        let slots = runs.compactMap { scheduledAt($0[0]) }
        let began = runs.compactMap { Double($0[1]) }
        try #require(slots.count == 2 && began.count == 2)
        // The delay never moves the grid…
        #expect(abs(slots[1] - slots[0] - 1.5) < 0.002, "slots \(slots)")
        // …and each run waited for it (a run may start later than that, never earlier).
        for index in 0..<2 {
            #expect(began[index] - slots[index] >= delay - 0.001, "run \(index) began \(began[index] - slots[index]) s after its slot; the delay is \(delay) s")
        }
    }

    /// `--timeout`: the command gets SIGTERM; one that ignores it gets SIGKILL after
    /// `--kill-after`. The run fails as timed out: one line, exit 124 (as `timeout(1)`).
    @Test func aRunPastItsTimeoutIsTerminatedAndEndsTheLoopWith124() async throws {
        let scratch = try Scratch()
        defer {
            killRecorded(scratch, "pid")
            scratch.cleanUp()
        }
        let started = ContinuousClock.now
        let polite = try LoopsProcess(
            ["run", "--every", "1s", "--timeout", "300ms", "--", "/bin/sh", "-c", "echo $$ >> '\(scratch.path("pid"))'; exec sleep 30"],
            scratch: scratch
        )
        #expect(await polite.finish() == 124)
        #expect(ContinuousClock.now - started < .seconds(8))
        #expect(polite.stderrLines == ["loops: '/bin/sh -c echo $$ >> '\(scratch.path("pid"))'; exec sleep 30' ran past --timeout 300ms and was terminated; stopping"])

        // Ignored SIGTERM survives exec: `sleep` is only ended by the SIGKILL.
        let stubborn = try LoopsProcess(
            ["run", "--every", "1s", "--timeout", "300ms", "--kill-after", "200ms", "--", "/bin/sh", "-c", "echo $$ >> '\(scratch.path("pid"))'; trap '' TERM; exec sleep 30"],
            scratch: scratch
        )
        #expect(await stubborn.finish() == 124)
        let lines = stubborn.stderrLines
        #expect(lines.count == 2, "\(lines)")
        #expect(lines.first?.contains("did not exit within 200ms of SIGTERM; sending SIGKILL") == true, "\(lines)")
        #expect(lines.last?.hasSuffix("ran past --timeout 300ms and was terminated; stopping") == true, "\(lines)")
    }

    /// `--on-failure continue`: a failed run (a status, a timeout) is reported in one line and
    /// the schedule goes on; `--count` counts successful runs; the exit status is 0.
    @Test func onFailureContinueKeepsTheSchedule() async throws {
        let scratch = try Scratch()
        defer {
            killRecorded(scratch, "pid")
            scratch.cleanUp()
        }
        let log = scratch.path("log")
        // Run 1 exits 3, run 2 outlasts the timeout, later runs succeed.
        let script = """
            echo $$ >> '\(scratch.path("pid"))'; echo run >> '\(log)'; n=$(wc -l < '\(log)'); \
            if [ "$n" -eq 1 ]; then exit 3; fi; if [ "$n" -eq 2 ]; then exec sleep 30; fi; echo ok >> '\(scratch.path("ok"))'
            """
        let loops = try LoopsProcess(
            ["run", "--every", "100ms", "--count", "2", "--timeout", "500ms", "--on-failure", "continue", "--", "/bin/sh", "-c", script],
            scratch: scratch
        )
        #expect(await loops.finish(within: .seconds(15)) == 0, "\(loops.stderrLines)")
        #expect(scratch.lines("log").count == 4)
        #expect(scratch.lines("ok") == ["ok", "ok"])
        let lines = loops.stderrLines
        #expect(lines.count == 2, "\(lines)")
        #expect(lines.first?.hasSuffix("exited with status 3; continuing on the schedule (--on-failure continue)") == true, "\(lines)")
        #expect(lines.last?.hasSuffix("ran past --timeout 500ms and was terminated; continuing on the schedule (--on-failure continue)") == true, "\(lines)")

        // `end` is the default, and says so explicitly too.
        let ending = try LoopsProcess(["run", "--every", "100ms", "--on-failure", "end", "--", "/bin/sh", "-c", "exit 4"], scratch: scratch)
        #expect(await ending.finish() == 4)
        #expect(ending.stderrLines.count == 1)
    }

    /// `--metrics-file`: Prometheus text, replaced atomically (no PATH.tmp left), updated after
    /// every run: run n sees the iterations counter at n.
    @Test func theMetricsFileIsWrittenAfterEveryRun() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let file = scratch.path("loops.prom")
        // Each run waits (up to 5 s) until the file counts the runs before it, and records it.
        let script = """
            for i in $(seq 250); do grep -q "^loops_iterations_total{loop=\\"job\\"} $LOOPS_ITERATION$" '\(file)' && break; sleep 0.02; done; \
            grep "^loops_iterations_total{" '\(file)' >> '\(scratch.path("seen"))'
            """
        let loops = try LoopsProcess(
            ["run", "--every", "100ms", "--count", "3", "--name", "job", "--metrics-file", file, "--", "/bin/sh", "-c", script],
            scratch: scratch
        )
        #expect(await loops.finish(within: .seconds(20)) == 0, "\(loops.stderrLines)")
        #expect(scratch.lines("seen") == [
            "loops_iterations_total{loop=\"job\"} 0",
            "loops_iterations_total{loop=\"job\"} 1",
            "loops_iterations_total{loop=\"job\"} 2",
        ])
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let lines = Set(text.split(separator: "\n").map(String.init))
        for expected in [
            "# TYPE loops_iterations_total counter",
            "loops_iterations_total{loop=\"job\"} 3",
            "loops_unhandled_errors_total{loop=\"job\"} 0",
            "loops_timeouts_total{loop=\"job\"} 0",
            "# TYPE loops_body_duration_seconds histogram",
            "loops_body_duration_seconds_count{loop=\"job\"} 3",
            "loops_run_last_exit_status{loop=\"job\"} 0.0",
        ] {
            #expect(lines.contains(expected), "\(expected) missing from:\n\(text)")
        }
        #expect(lines.contains { $0.hasPrefix("loops_run_last_success_timestamp_seconds{loop=\"job\"} 1") })
        #expect(!FileManager.default.fileExists(atPath: file + ".tmp"))
        // Every line is a comment or `name{labels} value`.
        #expect(text.split(separator: "\n").allSatisfy { $0.hasPrefix("# ") || $0.wholeMatch(of: /[a-z_]+\{[^}]*\} [0-9.e+-]+|[a-z_]+\{[^}]*\} \+Inf/) != nil }, "\(text)")

        // A failing run: its status and the unhandled error are in the file when loops exits.
        let failing = try LoopsProcess(
            ["run", "--every", "1s", "--name", "job", "--metrics-file", file, "--", "/bin/sh", "-c", "exit 7"],
            scratch: scratch
        )
        #expect(await failing.finish() == 7)
        let after = Set(try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").map(String.init))
        #expect(after.contains("loops_run_last_exit_status{loop=\"job\"} 7.0"))
        #expect(after.contains("loops_unhandled_errors_total{loop=\"job\"} 1"))
        #expect(after.contains("loops_iterations_total{loop=\"job\"} 0"))
    }

    /// `--stall-timeout` under a systemd watchdog (WATCHDOG_USEC = 600 ms: a keep-alive every
    /// 300 ms): while a run takes longer than 400 ms the keep-alives stop (one `critical` line
    /// on stderr names the loop), and they resume once it has ended.
    @Test func aStalledRunStopsTheWatchdogKeepAlives() async throws {
        let scratch = try Scratch()
        defer {
            killRecorded(scratch, "pid")
            scratch.cleanUp()
        }
        let socket = try NotifyListener(path: scratch.path("notify"))
        defer { socket.cleanUp() }
        let trigger = scratch.path("stall")
        // A run that finds the trigger removes it and works for 2 s, stamping (wall clock) when it
        // begins and ends.
        let script = """
            if [ -e '\(trigger)' ]; then rm '\(trigger)'; echo $$ >> '\(scratch.path("pid"))'; \
            date +%s.%N > '\(scratch.path("began"))'; sleep 2; date +%s.%N > '\(scratch.path("ended"))'; fi
            """
        let wallAtStart = Date().timeIntervalSince1970
        let continuousAtStart = ContinuousClock.now
        let loops = try LoopsProcess(
            ["run", "--every", "100ms", "--name", "stally", "--stall-timeout", "400ms", "--", "/bin/sh", "-c", script],
            scratch: scratch,
            environment: ["NOTIFY_SOCKET": socket.path, "WATCHDOG_USEC": "600000"]
        )
        let receiving = Task { await socket.receive(until: .now + .milliseconds(5500)) }
        try await Task.sleep(for: .milliseconds(1500))
        _ = FileManager.default.createFile(atPath: trigger, contents: nil)
        await waitUntil(.seconds(8)) { !scratch.lines("ended").isEmpty }
        let messages = await receiving.value
        loops.signal(SIGTERM)
        #expect(await loops.finish() == 0)

        // Wall-clock stamps of the command, placed on the continuous clock of the arrivals.
        func instant(_ name: String) throws -> ContinuousClock.Instant {
            let stamp = try #require(scratch.lines(name).first.flatMap(Double.init), "\(name) was not stamped")
            return continuousAtStart + .nanoseconds(Int64((stamp - wallAtStart) * 1e9))
        }
        let began = try instant("began")
        let ended = try instant("ended")
        let pings = messages.filter { $0.message == "WATCHDOG=1" }.map(\.at)
        let relative = pings.map { $0 - began }
        // Stalled from 400 ms after the run began (it began a little before its stamp): no
        // keep-alive from one period (300 ms, plus 300 ms of slack) after that until the end.
        let silentFrom = began + .milliseconds(400) + .milliseconds(300) + .milliseconds(300)
        #expect(pings.filter { $0 > silentFrom && $0 < ended }.isEmpty, "keep-alives relative to the stalled run's start: \(relative)")
        #expect(pings.filter { $0 < began }.count >= 3, "\(relative)")
        // Resumed: one within a period (plus slack) of the end.
        let resumed = pings.first { $0 >= ended }
        #expect(resumed.map { $0 - ended < .milliseconds(900) } == true, "\(relative)")
        #expect(loops.stderrLines.count == 1, "\(loops.stderrLines)")
        #expect(loops.stderrLines.first?.hasPrefix("loops: critical: loop 'stally' is unhealthy (stalled in runningBody for ") == true, "\(loops.stderrLines)")
    }

    /// Each bad value of the new options: one line, status 2, and the command never runs.
    @Test(arguments: [
        (["--name", ""], "--name must not be empty"),
        (["--name", "two\nlines"], "--name must be one line"),
        (["--timeout", "0s"], "--timeout must be more than 0, got '0s'"),
        (["--timeout", "soon"], "--timeout: 'soon' is not a duration: expected a number at 'soon'"),
        (["--timeout", "-1s"], "--timeout: '-1s' is not a duration: expected a number at '-1s'"),
        (["--timeout", "99999999999h"], "--timeout: '99999999999h' is too large"),
        (["--stall-timeout", "0ms"], "--stall-timeout must be more than 0, got '0ms'"),
        (["--stall-timeout", "5"], "--stall-timeout: '5' needs a unit (ms, s, m, h) after 5"),
        (["--randomized-delay", "x"], "--randomized-delay: 'x' is not a duration: expected a number at 'x'"),
        (["--randomized-delay", ""], "--randomized-delay: '' is empty; use a number and a unit such as 5s"),
        (["--fixed-random-delay"], "--fixed-random-delay needs --randomized-delay, e.g. --randomized-delay 5m --fixed-random-delay"),
        (["--on-failure", "retry"], "--on-failure: 'retry' is not end or continue"),
        (["--on-failure", ""], "--on-failure: '' is not end or continue"),
        (["--metrics-file", ""], "--metrics-file: the path is empty"),
        (["--metrics-file", "/"], "--metrics-file: '/' is a directory, not a file"),
        (["--metrics-file", "/tmp"], "--metrics-file: '/tmp' is a directory, not a file"),
        (
            ["--metrics-file", "/nonexistent-loops-dir/loops.prom"],
            "--metrics-file: cannot write '/nonexistent-loops-dir/loops.prom': open '/nonexistent-loops-dir/loops.prom.tmp' failed: No such file or directory (errno 2)"
        ),
    ])
    func badOptionValuesAreOneLineAndTheCommandNeverRuns(arguments: [String], line: String) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let loops = try LoopsProcess(
            ["run", "--every", "100ms", "--count", "1"] + arguments + ["--", "/bin/sh", "-c", "touch '\(scratch.path("ran"))'"],
            scratch: scratch
        )
        #expect(await loops.finish() == 2, "\(arguments)")
        #expect(loops.stderrLines == ["loops: error: \(line)"], "\(arguments)")
        #expect(scratch.lines("stdout").isEmpty)
        #expect(!FileManager.default.fileExists(atPath: scratch.path("ran")), "\(arguments): the command ran")
    }
}
