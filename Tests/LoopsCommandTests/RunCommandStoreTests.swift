import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `LOOPS_SCHEDULED_AT` as seconds since 1970.
private func seconds(_ text: Substring) -> Double? {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    // ISO8601DateFormatter reads milliseconds; the microseconds are added back by hand.
    guard text.count == 27, let micro = Double(text.dropFirst(20).dropLast()) else { return nil }
    guard let date = formatter.date(from: String(text.prefix(19)) + ".000Z") else { return nil }
    return date.timeIntervalSince1970 + micro / 1e6
}

/// One line the command appended: its slot and its fencing token.
private struct Run: Equatable {
    let slot: Double
    let token: UInt64
}

private func runs(_ scratch: Scratch) -> [Run] {
    scratch.lines("runs").compactMap { line in
        let parts = line.split(separator: " ")
        guard parts.count == 2, let slot = seconds(parts[0]), let token = UInt64(parts[1]) else { return nil }
        return Run(slot: slot, token: token)
    }
}

/// Whether `slot` is a whole multiple of 200 ms since 1970 (as printed, to the microsecond).
private func onTheEpochGrid(_ slot: Double) -> Bool {
    abs((slot * 5).rounded() - slot * 5) < 1e-4
}

/// `loops run --state-dir/--catch-up` against the real binary, killed with SIGKILL and started
/// again, as a crash and a restart under systemd would.
@Suite("loops run with a state directory: restarts, catch-up, fencing tokens")
struct RunCommandStoreTests {
    private static func arguments(_ scratch: Scratch, _ extra: [String]) -> [String] {
        ["run", "--every", "200ms", "--state-dir", scratch.path("state"), "--name", "job"] + extra
            + ["--", "/bin/sh", "-c", "echo \"$LOOPS_SCHEDULED_AT $LOOPS_FENCING_TOKEN\" >> '\(scratch.path("runs"))'"]
    }

    /// Runs until `count` lines exist, then SIGKILL.
    private static func runThenKill(_ scratch: Scratch, until count: Int, _ extra: [String] = []) async throws {
        let loops = try LoopsProcess(arguments(scratch, extra), scratch: scratch)
        await waitUntil(.seconds(10)) { runs(scratch).count >= count }
        loops.signal(SIGKILL)
        _ = await loops.finish()
        // A run in progress when loops died finishes by itself (an echo): let it.
        try await Task.sleep(for: .milliseconds(100))
    }

    @Test func killedAndRestartedWithCatchUpLatestRunsTheLatestMissedSlotOnce() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        try await Self.runThenKill(scratch, until: 3)
        let before = runs(scratch)
        let lastBefore = try #require(before.map(\.slot).max())
        // Down for 1 s: about five slots pass.
        try await Task.sleep(for: .seconds(1))
        let restarted = Date().timeIntervalSince1970
        let loops = try LoopsProcess(Self.arguments(scratch, ["--catch-up", "latest", "--count", "2"]), scratch: scratch)
        #expect(await loops.finish() == 0, "\(loops.stderrLines)")
        let after = Array(runs(scratch).dropFirst(before.count))
        try #require(after.count == 2, "\(scratch.lines("runs")) \(loops.stderrLines)")
        // The first run after the restart: the latest slot missed while down, not the first —
        // the last one before loops started, which is after `restarted` by its start-up time.
        #expect(after[0].slot > lastBefore + 0.5, "the latest missed slot, not the first: \(lastBefore) → \(after)")
        #expect(after[0].slot >= restarted - 0.2 - 0.001, "not the latest missed slot: restarted at \(restarted), \(after)")
        // Then the schedule: the next slot, on the grid.
        #expect(after[1].slot > after[0].slot)
        let all = runs(scratch)
        #expect(all.allSatisfy { onTheEpochGrid($0.slot) }, "\(all)")
        #expect(Set(all.map(\.slot)).count == all.count, "a slot ran twice: \(all)")
        #expect(zip(all, all.dropFirst()).allSatisfy { $0.token < $1.token }, "tokens: \(all.map(\.token))")
    }

    @Test func killedAndRestartedWithCatchUpAllRunsEveryMissedSlotInOrder() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        try await Self.runThenKill(scratch, until: 2)
        let before = runs(scratch)
        try await Task.sleep(for: .seconds(1))
        let restarted = Date().timeIntervalSince1970
        let loops = try LoopsProcess(Self.arguments(scratch, ["--catch-up", "all"]), scratch: scratch)
        await waitUntil(.seconds(10)) { runs(scratch).contains { $0.slot > restarted + 0.3 } }
        loops.signal(SIGTERM)
        #expect(await loops.finish() == 0, "\(loops.stderrLines)")
        let all = runs(scratch)
        let slots = all.map(\.slot)
        // From the first slot on, every 200 ms slot ran once, in order, through the downtime:
        // the slot whose run was cut short by SIGKILL (claimed, so counted) may be missing.
        let expected = Int(((slots.last! - slots.first!) / 0.2).rounded()) + 1
        #expect(Set(slots).count == slots.count, "a slot ran twice: \(slots)")
        #expect(slots == slots.sorted(), "\(slots)")
        #expect(slots.count >= expected - 1, "missed slots were not caught up on: \(slots)")
        #expect(all.dropFirst(before.count).contains { $0.slot < restarted }, "no catch-up: \(all) restarted at \(restarted)")
        #expect(all.allSatisfy { onTheEpochGrid($0.slot) }, "\(all)")
        #expect(zip(all, all.dropFirst()).allSatisfy { $0.token < $1.token }, "tokens: \(all.map(\.token))")
    }

    @Test func withoutCatchUpARestartRunsNoMissedSlotAndNeverRepeatsOne() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        try await Self.runThenKill(scratch, until: 2)
        let before = runs(scratch)
        try await Task.sleep(for: .milliseconds(700))
        let restarted = Date().timeIntervalSince1970
        let loops = try LoopsProcess(Self.arguments(scratch, ["--count", "2"]), scratch: scratch)
        #expect(await loops.finish() == 0, "\(loops.stderrLines)")
        let after = Array(runs(scratch).dropFirst(before.count))
        try #require(after.count == 2, "\(scratch.lines("runs"))")
        #expect(after.allSatisfy { $0.slot >= restarted - 0.001 }, "\(after) restarted at \(restarted)")
        #expect(after[0].token > before.last!.token)
    }

    @Test(arguments: [
        (["--catch-up", "latest"], "--catch-up latest needs a store: --state-dir DIR, $STATE_DIRECTORY or --postgres URL"),
        (["--catch-up", "sometimes", "--state-dir", "/tmp"], "--catch-up: 'sometimes' is not none, latest, all or all:N"),
        (["--catch-up", "all:0", "--state-dir", "/tmp"], "--catch-up: '0' in 'all:0' is not a number of slots from 1 to 100000"),
        (["--state-dir", ""], "--state-dir must not be empty"),
        (["--state-dir", "/dev/null"], "--state-dir: the run store's directory '/dev/null' is not a directory"),
        (["--postgres", "mysql://u@h/db"], "--postgres: 'mysql://u@h/db' is not a PostgreSQL URL (postgres://user:password@host:port/database)"),
        (["--postgres", "postgres://u@127.0.0.1/db", "--state-dir", "/tmp"], "--postgres and --state-dir both name a store; give one"),
        (["--lease", "1s"], "--lease 1s needs --postgres URL (or LOOPS_POSTGRES_URL)"),
        (["--postgres", "postgres://u@127.0.0.1/db", "--lease", "100ms"], "--lease must be at least 300ms, got '100ms'"),
    ])
    func badStoreOptionsAreOneLineAndStatusTwo(arguments: [String], line: String) async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let loops = try LoopsProcess(
            ["run", "--every", "100ms", "--count", "1"] + arguments + ["--", "/bin/sh", "-c", "touch '\(scratch.path("ran"))'"],
            scratch: scratch,
            environment: ["STATE_DIRECTORY": "", "LOOPS_POSTGRES_URL": ""]
        )
        #expect(await loops.finish() == 2, "\(arguments)")
        #expect(loops.stderrLines == ["loops: error: \(line)"], "\(arguments)")
        #expect(!FileManager.default.fileExists(atPath: scratch.path("ran")))
    }

    @Test func stateDirectoryComesFromSystemd() async throws {
        let scratch = try Scratch()
        defer { scratch.cleanUp() }
        let loops = try LoopsProcess(
            ["run", "--every", "100ms", "--count", "2", "--name", "unit", "--", "/bin/sh", "-c", "echo \"$LOOPS_FENCING_TOKEN\" >> '\(scratch.path("tokens"))'"],
            scratch: scratch,
            environment: ["STATE_DIRECTORY": scratch.path("systemd-state")]
        )
        #expect(await loops.finish() == 0, "\(loops.stderrLines)")
        #expect(scratch.lines("tokens") == ["1", "2"])
        #expect(FileManager.default.fileExists(atPath: scratch.path("systemd-state") + "/unit.json"))
    }
}
