import Foundation
import Logging
import Loops
@testable import LoopsPostgres
import LoopsTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

private let slot0 = Date(timeIntervalSince1970: 1_767_225_600.2)

private func slot(_ index: Int) -> Date { slot0.addingTimeInterval(Double(index) * 5) }

/// The database of a test's URL (its last path component, before the query).
private func databaseName(_ url: String) -> String {
    String(url.split(separator: "/").last!.split(separator: "?").first!)
}

@Suite(
    "PostgresRunStore against a real PostgreSQL started by the test",
    .serialized,
    .enabled(if: TestPostgres.unavailableReason == nil, "\(TestPostgres.unavailableReason ?? "")")
)
struct PostgresRunStoreTests {
    @Test("the schema is created once and re-migrating is harmless; claim, complete and lastRun round-trip; a second replica gets nil")
    func roundTrip() async throws {
        let url = try TestPostgres.shared.makeDatabase()
        let store = try PostgresRunStore(url: url, lease: .seconds(5))
        let replica = try PostgresRunStore(url: url, lease: .seconds(5))
        defer { store.shutdown(); replica.shutdown() }
        try await store.migrate()
        try await replica.migrate()
        #expect(try await store.lastRun(of: "backup") == nil)
        let claim = try #require(try await store.claim(slot(0), of: "backup"))
        #expect(claim.fencingToken == 1)
        #expect(claim.scheduledAt == slot(0))
        #expect(try await replica.claim(slot(0), of: "backup") == nil)
        #expect(try await store.claim(slot(0), of: "backup") == nil)
        try await store.complete(claim, outcome: .failed("disk full"), finishedAt: slot(0).addingTimeInterval(2))
        let record = try #require(try await replica.lastRun(of: "backup"))
        #expect(record == RunRecord(scheduledAt: slot(0), finishedAt: slot(0).addingTimeInterval(2), outcome: .failed("disk full"), fencingToken: 1))
        let next = try #require(try await replica.claim(slot(1), of: "backup"))
        #expect(next.fencingToken == 2)
        // An older slot after a later one finished is stale.
        try await replica.complete(next, outcome: .succeeded, finishedAt: slot(1))
        #expect(try await store.claim(slot(0).addingTimeInterval(1), of: "backup") == nil)
        // Another loop counts its own tokens.
        #expect(try await store.claim(slot(0), of: "report")?.fencingToken == 1)
    }

    @Test("loops_run keeps the latest finished runs of each loop; a pruned slot is never claimed again; unfinished runs stay")
    func oldRunsArePruned() async throws {
        let url = try TestPostgres.shared.makeDatabase()
        let database = databaseName(url)
        // Keeps 5 finished runs per loop, pruning at every completion (5 / 10 rounds up to 1).
        let store = try PostgresRunStore(url: url, lease: .seconds(5), keptRuns: 5)
        defer { store.shutdown() }
        func rows(_ loop: String, finished: Bool) throws -> Int {
            Int(try TestPostgres.shared.psqlValue(
                "SELECT count(*) FROM loops_run WHERE loop = '\(loop)' AND finished_at IS \(finished ? "NOT NULL" : "NULL")",
                database: database
            )) ?? -1
        }
        // A slot claimed and never completed (its replica is still at it).
        let unfinished = try #require(try await store.claim(slot(0), of: "job"))
        for index in 1...23 {
            let claim = try #require(try await store.claim(slot(index), of: "job"))
            try await store.complete(claim, outcome: .succeeded, finishedAt: slot(index).addingTimeInterval(1))
        }
        // Another loop's history is its own.
        let other = try #require(try await store.claim(slot(0), of: "other"))
        try await store.complete(other, outcome: .succeeded, finishedAt: slot(0))

        #expect(try rows("job", finished: true) == 5)
        #expect(try rows("job", finished: false) == 1)
        #expect(try rows("other", finished: true) == 1)
        #expect(try await store.lastRun(of: "job")?.scheduledAt == slot(23))
        // Slot 3's row is gone, and slot 3 still never runs again: later runs have finished.
        #expect(try await store.claim(slot(3), of: "job") == nil)
        // The unfinished slot was not touched: it completes normally.
        try await store.complete(unfinished, outcome: .succeeded, finishedAt: slot(0).addingTimeInterval(9))
    }

    @Test("an operation the server does not answer (the migration lock held elsewhere) fails after operationTimeout; the loop is never held longer")
    func unansweredOperationTimesOut() async throws {
        let url = try TestPostgres.shared.makeDatabase()
        // Another session holds the migration's advisory lock for 6 s: the store's migration
        // waits for it in the server, where cancelling the Swift task does not reach.
        let holder = try TestPostgres.shared.spawnPsql(
            "SELECT pg_advisory_lock(\(PostgresRunStore.advisoryLockKey)); SELECT pg_sleep(6)",
            database: databaseName(url)
        )
        defer { holder.kill() }
        try await Task.sleep(for: .milliseconds(500))
        let store = try PostgresRunStore(url: url, lease: .seconds(30), operationTimeout: .seconds(1))
        defer { store.shutdown() }
        let started = ContinuousClock.now
        await #expect(throws: PostgresRunStoreError.self) { try await store.claim(slot(0), of: "job") }
        #expect(ContinuousClock.now - started < .seconds(3), "\(ContinuousClock.now - started)")
        // Once the lock is free, the migration that went on in the background completes and
        // claims succeed.
        #expect(await holder.finish(within: .seconds(15)) == .exited(0))
        var claim: SlotClaim?
        for _ in 0..<20 where claim == nil {
            claim = try? await store.claim(slot(0), of: "job")
            if claim == nil { try await Task.sleep(for: .milliseconds(250)) }
        }
        #expect(claim?.fencingToken == 1)
    }

    @Test("twenty replicas claiming the same slots at once: each slot goes to exactly one, tokens strictly increase")
    func concurrentClaims() async throws {
        let url = try TestPostgres.shared.makeDatabase()
        // Twenty clients connecting and migrating at once can take longer than lease / 3 on a
        // loaded machine; this test is about exclusivity, not timeouts.
        let stores = try (0..<20).map { _ in try PostgresRunStore(url: url, lease: .seconds(5), operationTimeout: .seconds(30)) }
        defer { for store in stores { store.shutdown() } }
        var tokens: [UInt64] = []
        for index in 0..<5 {
            let granted = try await withThrowingTaskGroup(of: UInt64?.self, returning: [UInt64].self) { group in
                for store in stores { group.addTask { try await store.claim(slot(index), of: "job")?.fencingToken } }
                var granted: [UInt64] = []
                for try await token in group { if let token { granted.append(token) } }
                return granted
            }
            #expect(granted.count == 1, "slot \(index): \(granted)")
            tokens += granted
        }
        #expect(tokens == [1, 2, 3, 4, 5])
    }

    @Test("a claim not renewed past its lease (its replica died) is handed to the next claimer with a higher token; the old owner's completion is refused")
    func lapsedClaimIsTakenOver() async throws {
        let url = try TestPostgres.shared.makeDatabase()
        let dead = try PostgresRunStore(url: url, lease: .milliseconds(600))
        let survivor = try PostgresRunStore(url: url, lease: .milliseconds(600))
        defer { dead.shutdown(); survivor.shutdown() }
        let lost = try #require(try await dead.claim(slot(0), of: "job"))
        // Within the lease: nobody else gets the slot.
        #expect(try await survivor.claim(slot(0), of: "job") == nil)
        try await Task.sleep(for: .milliseconds(900))
        let takenOver = try #require(try await survivor.claim(slot(1), of: "job"))
        #expect(takenOver.scheduledAt == slot(0), "the lapsed slot comes first")
        #expect(takenOver.fencingToken > lost.fencingToken)
        do {
            try await dead.complete(lost, outcome: .succeeded, finishedAt: Date())
            Issue.record("the superseded claim completed")
        } catch let error as LoopError {
            #expect(error.code == .claimLost)
        }
        try await survivor.complete(takenOver, outcome: .succeeded, finishedAt: Date())
        let next = try #require(try await survivor.claim(slot(1), of: "job"))
        #expect(next.scheduledAt == slot(1))
        #expect(next.fencingToken > takenOver.fencingToken)
    }

    @Test("while the body runs its lease is renewed: no takeover; once taken over, waitForLoss returns within a renewal period")
    func renewalAndTakeover() async throws {
        let url = try TestPostgres.shared.makeDatabase()
        let owner = try PostgresRunStore(url: url, lease: .milliseconds(900))
        let other = try PostgresRunStore(url: url, lease: .milliseconds(900))
        defer { owner.shutdown(); other.shutdown() }
        let claim = try #require(try await owner.claim(slot(0), of: "job"))
        let watch = Task { () -> ContinuousClock.Instant in
            await owner.waitForLoss(of: claim)
            return ContinuousClock.now
        }
        // Twice the lease: renewed all along, so the slot is not handed over.
        try await Task.sleep(for: .milliseconds(1800))
        #expect(try await other.claim(slot(1), of: "job")?.scheduledAt == slot(1))
        // Force the lease out, as a stall would, and let the other replica take the slot over.
        try TestPostgres.shared.psql("UPDATE loops_run SET lease_until = now() - interval '1 second' WHERE scheduled_at = \(slot(0).timeIntervalSince1970)", database: databaseName(url))
        let takenOver = try #require(try await other.claim(slot(2), of: "job"))
        #expect(takenOver.scheduledAt == slot(0))
        let tookOverAt = ContinuousClock.now
        let returned = await watch.value
        // A renewal every 300 ms finds the claim gone.
        #expect(returned - tookOverAt < .milliseconds(300 + 250), "\(returned - tookOverAt)")
    }

    @Test("a body's finished watch stops renewing: cancelling waitForLoss returns at once")
    func cancellingTheWatch() async throws {
        let url = try TestPostgres.shared.makeDatabase()
        let store = try PostgresRunStore(url: url, lease: .seconds(3))
        defer { store.shutdown() }
        let claim = try #require(try await store.claim(slot(0), of: "job"))
        let watch = Task { await store.waitForLoss(of: claim) }
        try await Task.sleep(for: .milliseconds(100))
        let cancelled = ContinuousClock.now
        watch.cancel()
        await watch.value
        #expect(ContinuousClock.now - cancelled < .milliseconds(500))
    }

    @Test("bad URLs and leases are LoopErrors naming the value", arguments: [
        ("mysql://u@h/db", "is not a PostgreSQL URL"),
        ("postgres:///db", "names no host"),
        ("postgres://h:5432/db", "names no user"),
        ("postgres://u:secret@h/db?sslmode=sometimes", "has sslmode 'sometimes'"),
    ])
    func badInput(url: String, message: String) throws {
        do {
            _ = try PostgresRunStore(url: url)
            Issue.record("accepted \(url)")
        } catch let error as LoopError {
            #expect(error.code == .invalidOption)
            #expect(error.message.contains(message), "\(error.message)")
            #expect(!error.message.contains("secret"), "the password is not printed")
        }
        #expect(throws: LoopError.self) { try PostgresRunStore(url: "postgres://u@h/db", lease: .milliseconds(100)) }
    }
}

@Suite(
    "PostgresRunStore across a PostgreSQL restart",
    .serialized,
    .enabled(if: TestPostgres.unavailableReason == nil, "\(TestPostgres.unavailableReason ?? "")")
)
struct PostgresRestartTests {
    @Test("the server stops mid-body: waitForLoss returns before the lease can run out; after a restart claims resume, and an unfinished claim gets a full lease from the restart before it is handed over")
    func serverRestart() async throws {
        let server = try TestPostgres()
        defer { server.destroy() }
        let url = server.url
        let store = try PostgresRunStore(url: url, lease: .milliseconds(1500))
        let other = try PostgresRunStore(url: url, lease: .milliseconds(1500))
        defer { store.shutdown(); other.shutdown() }
        let claim = try #require(try await store.claim(slot(0), of: "job"))
        let watch = Task { () -> ContinuousClock.Instant in
            await store.waitForLoss(of: claim)
            return ContinuousClock.now
        }
        try await Task.sleep(for: .milliseconds(600))
        let stopped = ContinuousClock.now
        server.stop()
        let lostAt = await watch.value
        // The last renewal was sent at most one period (500 ms) before the stop; the watch gives
        // up 1250 ms after it, before the database's lease (1500 ms after that renewal) ends.
        #expect(lostAt - stopped < .milliseconds(1250 + 100), "\(lostAt - stopped)")
        #expect(lostAt - stopped > .milliseconds(250), "\(lostAt - stopped)")
        // A claim while the server is down fails (transient: the loop retries it).
        await #expect(throws: PostgresRunStoreError.self) { _ = try await other.claim(slot(1), of: "job") }
        try server.start()
        // The claims come back once the client has reconnected.
        var resumed: SlotClaim?
        let deadline = ContinuousClock.now + .seconds(20)
        while resumed == nil, ContinuousClock.now < deadline {
            resumed = try? await other.claim(slot(1), of: "job")
            if resumed == nil { try await Task.sleep(for: .milliseconds(200)) }
        }
        let next = try #require(resumed)
        // A restart gives the unfinished claim of slot 0 a full lease from the restart (its
        // owner may have finished during the outage and record it now): slot 1 comes first.
        #expect(next.scheduledAt == slot(1))
        #expect(next.fencingToken > claim.fencingToken)
        try await other.complete(next, outcome: .succeeded, finishedAt: Date())
        // Nobody renews slot 0: one lease after the restart it is handed over, once.
        try await Task.sleep(for: .milliseconds(1500 + 300))
        let handedOver = try #require(try await other.claim(slot(2), of: "job"))
        #expect(handedOver.scheduledAt == slot(0))
        #expect(handedOver.fencingToken > next.fencingToken)
        #expect(try await other.claim(slot(2), of: "job")?.scheduledAt == slot(2))
    }
}
