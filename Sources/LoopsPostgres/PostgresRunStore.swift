public import Foundation
public import Logging
public import Loops
public import PostgresNIO

/// A ``/Loops/RunStore`` on PostgreSQL, shared by every replica of a daemon: each slot of a
/// named loop runs on one replica at a time, under a fencing token that strictly increases per
/// loop name.
///
/// ```swift
/// let store = try PostgresRunStore(url: "postgres://loops:secret@db.internal:5432/app")
/// let backup = try Loop(schedule: .calendar("*-*-* 02:30"), name: "backup", store: store) { loop in
///     try await runBackup(fencingToken: loop.fencingToken!)
/// }
/// ```
///
/// A claim holds a lease (30 s by default) on the database's clock, renewed every third of the
/// lease while the body runs. A replica that dies mid-body stops renewing; once the lease has run
/// out, the next replica that claims a slot of that loop is handed the lapsed slot, with a higher
/// token, and runs it again. A replica that cannot renew (the database or the network is down)
/// cancels its body before the lease can run out, so a slot never runs on two replicas at once.
/// Each slot therefore runs at least once, and each fencing token at most once. Leases are
/// measured by the database alone: replicas' clocks only decide when each one asks for a slot,
/// and a skew of up to half the lease is tolerated (see Documentation/Cluster.md).
///
/// The store creates and migrates its tables (`loops_schema_version`, `loops_loop`, `loops_run`)
/// and a function (`loops_claim`) on first use, under an advisory lock. `loops_run` keeps the
/// latest ``keptRunsPerLoop`` finished runs of each loop (and every unfinished one); older rows
/// are deleted as runs complete, so a loop every 200 ms does not add 432,000 rows a day.
public final class PostgresRunStore: RunStore {
    /// How long a claim lasts without renewal.
    public let lease: Duration
    /// How long one operation may take before it fails (and the loop retries it).
    public let operationTimeout: Duration
    /// Names this process in the `owner` column: host, PID and a random part.
    public let ownerID: String

    private let client: PostgresClient
    /// The task running `client.run()`, when the store owns its client.
    private let runner: Task<Void, Never>?
    private let logger: Logger
    private let migration = MigrationState()

    /// The schema version this library writes.
    static let schemaVersion = 1
    /// The shortest lease: renewals every third of it must fit in.
    public static let minimumLease = Duration.milliseconds(300)
    /// How many finished runs of each loop `loops_run` keeps: the history to look back on. The
    /// rows beyond are deleted once every tenth of this many completions (by fencing token).
    /// Claims do not need them: a slot older than every row left has a later finished run, so
    /// it is never claimed again either way.
    public static let keptRunsPerLoop = 1000
    /// ``keptRunsPerLoop``, smaller in tests.
    let keptRuns: Int

    /// A store on the database of `url` (`postgres://user:password@host:port/database`; TLS is
    /// used when the server offers it, or as `?sslmode=disable|prefer|require` says), with a
    /// client of its own. Call ``shutdown()`` when done.
    ///
    /// - Throws: ``/Loops/LoopError`` (`.invalidOption`) for a URL that is not a PostgreSQL URL, a
    ///   lease shorter than ``minimumLease`` or a timeout that is not positive.
    public convenience init(
        url: String,
        lease: Duration = .seconds(30),
        operationTimeout: Duration? = nil,
        logger: Logger = Logger.current
    ) throws {
        try self.init(
            configuration: try PostgresURL.configuration(from: url),
            lease: lease,
            operationTimeout: operationTimeout,
            logger: logger
        )
    }

    /// A store with a client of its own on `configuration`. Call ``shutdown()`` when done.
    ///
    /// - Throws: ``/Loops/LoopError`` (`.invalidOption`) for a lease shorter than
    ///   ``minimumLease`` or a timeout that is not positive.
    public convenience init(
        configuration: PostgresClient.Configuration,
        lease: Duration = .seconds(30),
        operationTimeout: Duration? = nil,
        logger: Logger = Logger.current
    ) throws {
        // postgres-nio reports each failed connection attempt at .info; a library logs at
        // .debug at most, so its background messages below .notice are left out.
        var background = logger
        if background.logLevel < .notice { background.logLevel = .notice }
        let client = PostgresClient(configuration: configuration, backgroundLogger: background)
        try self.init(client: client, ownsClient: true, lease: lease, operationTimeout: operationTimeout, logger: logger)
    }

    /// A store on `client`, which the caller runs (`client.run()`) and shuts down.
    ///
    /// - Throws: ``/Loops/LoopError`` (`.invalidOption`) for a lease shorter than
    ///   ``minimumLease`` or a timeout that is not positive.
    public convenience init(
        client: PostgresClient,
        lease: Duration = .seconds(30),
        operationTimeout: Duration? = nil,
        logger: Logger = Logger.current
    ) throws {
        try self.init(client: client, ownsClient: false, lease: lease, operationTimeout: operationTimeout, logger: logger)
    }

    /// A store on `url` that keeps `keptRuns` finished runs per loop (tests).
    convenience init(url: String, lease: Duration, keptRuns: Int) throws {
        let client = PostgresClient(configuration: try PostgresURL.configuration(from: url))
        try self.init(client: client, ownsClient: true, lease: lease, operationTimeout: nil, logger: Logger.current, keptRuns: keptRuns)
    }

    private init(
        client: PostgresClient,
        ownsClient: Bool,
        lease: Duration,
        operationTimeout: Duration?,
        logger: Logger,
        keptRuns: Int = PostgresRunStore.keptRunsPerLoop
    ) throws {
        guard lease >= Self.minimumLease else {
            throw LoopError(.invalidOption, "lease must be at least \(Self.minimumLease), got \(lease)")
        }
        let timeout = operationTimeout ?? lease / 3
        guard timeout > .zero else {
            throw LoopError(.invalidOption, "operationTimeout must be positive, got \(timeout)")
        }
        self.lease = lease
        self.keptRuns = max(1, keptRuns)
        self.operationTimeout = timeout
        self.client = client
        self.logger = logger
        let host = ProcessInfo.processInfo.hostName
        self.ownerID = "\(host):\(getpid()):\(UInt32.random(in: 0...UInt32.max))"
        // Immediate, so that run() has begun when init returns: a query before it makes the
        // client log a warning ("run() hasn't been called yet").
        self.runner = ownsClient ? Task.immediate { await client.run() } : nil
    }

    /// Ends the client the store runs (the URL and configuration initializers); a store on a
    /// caller's client leaves it alone.
    public func shutdown() {
        runner?.cancel()
    }

    // MARK: RunStore

    /// The last finished slot of `loopName`.
    ///
    /// - Throws: ``PostgresRunStoreError`` when the database cannot be reached in time (the loop
    ///   retries), ``/Loops/LoopError`` (`.corruptRecord`) for a row this library cannot read.
    public func lastRun(of loopName: String) async throws -> RunRecord? {
        try await operation("read the last run of '\(loopName)'") { client, logger in
            let rows = try await client.query(
                """
                SELECT scheduled_at, finished_at, outcome, detail, token FROM loops_run
                WHERE loop = \(loopName) AND finished_at IS NOT NULL
                ORDER BY scheduled_at DESC LIMIT 1
                """,
                logger: logger
            )
            for try await (scheduled, finished, outcome, detail, token) in rows.decode((Double, Double, String, String?, Int64).self) {
                return RunRecord(
                    scheduledAt: Date(timeIntervalSince1970: scheduled),
                    finishedAt: Date(timeIntervalSince1970: finished),
                    outcome: try Self.outcome(outcome, detail: detail, loopName: loopName),
                    fencingToken: UInt64(max(0, token))
                )
            }
            return nil
        }
    }

    /// Claims `scheduledAt` of `loopName`, or hands over an earlier slot of the loop whose lease
    /// ran out unfinished; nil when the slot ran, runs elsewhere, or a later slot has finished.
    ///
    /// - Throws: ``PostgresRunStoreError`` when the database cannot be reached in time.
    public func claim(_ scheduledAt: Date, of loopName: String) async throws -> SlotClaim? {
        let leaseMilliseconds = Self.milliseconds(lease)
        let owner = ownerID
        return try await operation("claim \(scheduledAt) of '\(loopName)'") { client, logger in
            let rows = try await client.query(
                "SELECT slot, token FROM loops_claim(\(loopName), \(scheduledAt.timeIntervalSince1970), \(owner), \(leaseMilliseconds))",
                logger: logger
            )
            for try await (slot, token) in rows.decode((Double, Int64).self) {
                return SlotClaim(loopName: loopName, scheduledAt: Date(timeIntervalSince1970: slot), fencingToken: UInt64(token))
            }
            return nil
        }
    }

    /// Records the end of `claim`'s slot.
    ///
    /// - Throws: ``/Loops/LoopError`` (`.claimLost`) when the slot was taken over by another
    ///   replica (its lease ran out), ``PostgresRunStoreError`` when the database cannot be
    ///   reached in time.
    public func complete(_ claim: SlotClaim, outcome: RunRecord.Outcome, finishedAt: Date) async throws {
        let (name, detail) = Self.columns(of: outcome)
        let recorded = try await operation("record the end of \(claim.scheduledAt) of '\(claim.loopName)'") { client, logger in
            let rows = try await client.query(
                """
                UPDATE loops_run SET finished_at = \(finishedAt.timeIntervalSince1970), outcome = \(name), detail = \(detail)
                WHERE loop = \(claim.loopName) AND scheduled_at = \(claim.scheduledAt.timeIntervalSince1970)
                  AND token = \(Int64(claim.fencingToken)) AND finished_at IS NULL
                RETURNING token
                """,
                logger: logger
            )
            var count = 0
            for try await _ in rows { count += 1 }
            return count
        }
        guard recorded == 1 else {
            throw LoopError(
                .claimLost,
                "the claim of loop '\(claim.loopName)' on \(claim.scheduledAt) (fencing token \(claim.fencingToken)) was taken over before its end was recorded"
            )
        }
        if claim.fencingToken % UInt64(max(1, keptRuns / 10)) == 0 {
            await pruneFinishedRuns(of: claim.loopName)
        }
    }

    /// Deletes the finished runs of `loopName` beyond the latest ``keptRuns``. The run is
    /// recorded already: a failure here only leaves the rows for the next time.
    func pruneFinishedRuns(of loopName: String) async {
        let offset = keptRuns - 1
        do {
            try await operation("delete old runs of '\(loopName)'") { client, logger in
                _ = try await client.query(
                    """
                    DELETE FROM loops_run WHERE loop = \(loopName) AND finished_at IS NOT NULL AND scheduled_at < (
                        SELECT scheduled_at FROM loops_run WHERE loop = \(loopName) AND finished_at IS NOT NULL
                        ORDER BY scheduled_at DESC OFFSET \(offset) LIMIT 1
                    )
                    """,
                    logger: logger
                )
            }
        } catch {
            logger.debug("old runs not deleted", metadata: ["loop.name": "\(loopName)", "error": "\(error)"])
        }
    }

    /// Renews `claim`'s lease every third of the lease and returns when it is lost: taken over,
    /// or not renewed for the lease less a margin (measured on this machine's monotonic clock
    /// from when the last successful renewal was sent), so that the body is cancelled before the
    /// database can hand the slot to another replica.
    public func waitForLoss(of claim: SlotClaim) async {
        let clock = ContinuousClock()
        var renewedAt = clock.now
        var attemptedAt = renewedAt
        let period = lease / 3
        // The body must be cancelled, and stop, before the lease can run out on the database:
        // a sixth of the lease is left for that.
        let safeFor = lease - lease / 6
        while !Task.isCancelled {
            try? await Task.sleep(until: min(attemptedAt + period, renewedAt + safeFor), clock: clock)
            if Task.isCancelled { return }
            attemptedAt = clock.now
            let remaining = safeFor - (attemptedAt - renewedAt)
            if remaining <= .zero { return }
            do {
                // Never waits past the safe time for an answer that may not come.
                let held = try await renew(claim, timeout: min(operationTimeout, remaining))
                guard held else {
                    logger.debug("claim taken over", metadata: ["loop.name": "\(claim.loopName)", "loop.fencing_token": "\(claim.fencingToken)"])
                    return
                }
                renewedAt = attemptedAt
            } catch {
                logger.debug("lease renewal failed", metadata: ["loop.name": "\(claim.loopName)", "error": "\(error)"])
            }
            if clock.now - renewedAt >= safeFor { return }
        }
    }

    /// Extends the lease of `claim`; false when it is no longer this replica's.
    func renew(_ claim: SlotClaim, timeout: Duration) async throws -> Bool {
        let leaseMilliseconds = Self.milliseconds(lease)
        let owner = ownerID
        return try await operation("renew the claim on \(claim.scheduledAt) of '\(claim.loopName)'", timeout: timeout) { client, logger in
            let rows = try await client.query(
                """
                UPDATE loops_run SET lease_until = clock_timestamp() + \(leaseMilliseconds) * interval '1 millisecond'
                WHERE loop = \(claim.loopName) AND scheduled_at = \(claim.scheduledAt.timeIntervalSince1970)
                  AND token = \(Int64(claim.fencingToken)) AND owner = \(owner) AND finished_at IS NULL
                RETURNING token
                """,
                logger: logger
            )
            var count = 0
            for try await _ in rows { count += 1 }
            return count == 1
        }
    }

    // MARK: Operations

    /// Runs `body` after the schema is in place, within ``operationTimeout``; failures of the
    /// database become ``PostgresRunStoreError`` (transient: the loop retries).
    private func operation<Value: Sendable>(
        _ what: String,
        timeout: Duration? = nil,
        _ body: @escaping @Sendable (PostgresClient, Logger) async throws -> Value
    ) async throws -> Value {
        let client = self.client
        let logger = self.logger
        do {
            return try await withTimeout(timeout ?? operationTimeout, what) {
                try await self.migrateIfNeeded()
                return try await body(client, logger)
            }
        } catch let error as LoopError {
            throw error
        } catch let error as PostgresRunStoreError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw PostgresRunStoreError(message: "cannot \(what): \(String(reflecting: error))")
        }
    }

    /// `body`'s value, or a ``PostgresRunStoreError`` once `timeout` has passed — whether or not
    /// `body` has ended by then. A task group would wait for its cancelled child, and a query
    /// that ignores cancellation (one waiting for a lock in the server) would hold the loop for
    /// ever; here the body is cancelled and left to end in the background.
    private func withTimeout<Value: Sendable>(
        _ timeout: Duration,
        _ what: String,
        _ body: @escaping @Sendable () async throws -> Value
    ) async throws -> Value {
        let race = FirstResult<Value>()
        let work = Task {
            do {
                race.finish(.success(try await body()))
            } catch {
                race.finish(.failure(error))
            }
        }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            race.finish(.failure(PostgresRunStoreError(message: "cannot \(what): no answer from PostgreSQL within \(timeout)")))
        }
        defer {
            work.cancel()
            timer.cancel()
        }
        return try await withTaskCancellationHandler {
            try await race.value()
        } onCancel: {
            race.finish(.failure(CancellationError()))
        }
    }

    /// Creates or migrates the schema once per store.
    func migrateIfNeeded() async throws {
        if migration.isDone { return }
        try await migrate()
        migration.markDone()
    }

    /// Creates the tables and the claim function, or migrates them, under an advisory lock so
    /// that replicas starting together do it once. Idempotent.
    public func migrate() async throws {
        let logger = self.logger
        let client = self.client
        // In a task of its own, never cancelled: once the advisory lock is taken, the migration
        // and the unlock must run whatever happens to the caller (a timeout, a cancelled loop),
        // or the lock would stay with the pooled connection and every later migration wait
        // for it in the server.
        try await Task {
            try await Self.migrateUnderLock(client: client, logger: logger)
        }.value
    }

    private static func migrateUnderLock(client: PostgresClient, logger: Logger) async throws {
        try await client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(advisoryLockKey))", logger: logger)
            do {
                try await migrate(on: connection, logger: logger)
                try await connection.query("SELECT pg_advisory_unlock(\(advisoryLockKey))", logger: logger)
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(advisoryLockKey))", logger: logger)
                throw error
            }
        }
    }

    /// "loops" in ASCII: the advisory lock of the migration.
    static let advisoryLockKey: Int64 = 0x6C_6F_6F_70_73

    private static func migrate(on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("CREATE TABLE IF NOT EXISTS loops_schema_version (version integer NOT NULL)", logger: logger)
        var version = 0
        for try await (found,) in try await connection.query("SELECT max(version) FROM loops_schema_version", logger: logger).decode((Int?,).self) {
            version = found ?? 0
        }
        guard version <= schemaVersion else {
            throw LoopError(
                .corruptRecord,
                "the database's swift-loops schema has version \(version); this library knows up to \(schemaVersion)"
            )
        }
        guard version < schemaVersion else { return }
        for statement in PostgresSchema.version1 {
            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
        }
        try await connection.query("INSERT INTO loops_schema_version (version) VALUES (\(schemaVersion))", logger: logger)
    }

    // MARK: Rows

    private static func columns(of outcome: RunRecord.Outcome) -> (String, String?) {
        switch outcome {
        case .succeeded: ("succeeded", nil)
        case .failed(let message): ("failed", message)
        case .cancelled: ("cancelled", nil)
        }
    }

    private static func outcome(_ name: String, detail: String?, loopName: String) throws -> RunRecord.Outcome {
        switch name {
        case "succeeded": return .succeeded
        case "failed": return .failed(detail ?? "")
        case "cancelled": return .cancelled
        default:
            throw LoopError(.corruptRecord, "loops_run holds outcome '\(name)' for loop '\(loopName)', which this library does not know")
        }
    }

    private static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

/// Whether the schema was checked by this store.
private final class MigrationState: Sendable {
    private let done = LockedValue(false)
    var isDone: Bool { done.withLock { $0 } }
    func markDone() { done.withLock { $0 = true } }
}

/// The first of several results (a body's, a timer's, a cancellation's), for one waiter.
private final class FirstResult<Value: Sendable>: Sendable {
    private enum State {
        case waiting(UnsafeContinuation<Value, any Error>?)
        case finished(Result<Value, any Error>)
    }

    private let state = LockedValue(State.waiting(nil))

    /// Records `result` unless another came first, and resumes the waiter.
    func finish(_ result: Result<Value, any Error>) {
        let waiter = state.withLock { state -> UnsafeContinuation<Value, any Error>? in
            guard case .waiting(let waiter) = state else { return nil }
            state = .finished(result)
            return waiter
        }
        waiter?.resume(with: result)
    }

    /// The first result, once there is one.
    func value() async throws -> Value {
        try await withUnsafeThrowingContinuation { continuation in
            let ready = state.withLock { state -> Result<Value, any Error>? in
                switch state {
                case .finished(let result):
                    return result
                case .waiting:
                    state = .waiting(continuation)
                    return nil
                }
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}
