import ArgumentParser
import Dispatch
import Foundation
import Logging
import Loops
import LoopsCommandLine
import LoopsSystemd
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `loops run`: runs a command on a schedule, the daemon use of the library.
///
/// Exit status: 0 when the loop ends by `--count` or SIGTERM; the command's status (or 128 +
/// its signal) when a run fails with a status that is not retried; 2 for bad input, which
/// includes a command that is not found or not executable at start-up; 127/126 when a later run
/// cannot be started; 130 after SIGINT.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command on a schedule, as a daemon (systemd notify and watchdog aware).",
        discussion: """
            Exactly one of --every, --times, --calendar and --cron gives the schedule; the \
            command follows '--'. A run that exits with a status listed in --retry-exit-codes is \
            retried after an exponential back-off (not counted); any other non-zero status ends \
            the loop and loops exits with it. A command killed by signal N counts as status \
            128+N, as in a shell (so --retry-exit-codes 137 retries a SIGKILL). A command that is \
            not found or not executable is bad input (exit 2, before READY=1); 127/126 when it \
            vanishes later. SIGTERM stops after the current run (exit 0); SIGINT sends the \
            running command SIGTERM, SIGKILL after --kill-after, waits for it and exits 130. \
            Under systemd (NOTIFY_SOCKET set) loops sends READY=1, a STATUS= line per run, \
            STOPPING=1, and WATCHDOG=1 every half of WATCHDOG_USEC while the loop is healthy \
            (no run past --stall-timeout); if the socket cannot be reached, one warning goes to \
            stderr and the loop runs on. A run past --timeout is terminated like one after \
            SIGINT and fails (exit 124 unless --on-failure continue). The command's environment \
            has LOOPS_NAME, LOOPS_ITERATION and LOOPS_SCHEDULED_AT (its slot, UTC). With a \
            state directory (--state-dir, or systemd's StateDirectory=) each slot is recorded in \
            a file named after --name before it runs, or with --postgres in a database that \
            replicas share (each slot then runs on one of them), so a slot never runs twice, --every slots \
            fall on multiples of the interval since 1970, --catch-up runs missed slots at start, \
            and the command also gets LOOPS_FENCING_TOKEN (strictly increasing per name).
            """
    )

    @OptionGroup var schedule: ScheduleOptions

    @Option(parsing: .unconditional, help: "Stop after this many successful runs (at least 1); default: run until stopped.")
    var count: Int?

    @Option(
        name: .customLong("retry-exit-codes"),
        parsing: .unconditional,
        help: ArgumentHelp(
            "Exit statuses that are retried with back-off, comma-separated: 75,111.",
            valueName: "codes"
        )
    )
    var retryExitCodes: String?

    @Option(
        name: .customLong("kill-after"),
        help: ArgumentHelp(
            "After SIGINT or --timeout, how long the running command has to exit after its SIGTERM before it gets SIGKILL.",
            valueName: "duration"
        )
    )
    var killAfter: String = Self.defaultKillAfter

    /// Long enough for a command to clean up after SIGTERM, short enough that a command that
    /// ignores it does not hold an interrupted `loops` for long (systemd waits 90 s by default
    /// before its own SIGKILL).
    static let defaultKillAfter = "10s"

    @Option(
        name: .customLong("name"),
        parsing: .unconditional,
        help: ArgumentHelp(
            "The loop's name in its log lines, metrics (label loop) and LOOPS_NAME; default: the command's basename.",
            valueName: "name"
        )
    )
    var name: String?

    @Option(
        name: .customLong("timeout"),
        parsing: .unconditional,
        help: ArgumentHelp(
            "The longest a run may take: then it gets SIGTERM (SIGKILL after --kill-after) and the run fails as timed out.",
            valueName: "duration"
        )
    )
    var timeout: String?

    @Option(
        name: .customLong("stall-timeout"),
        parsing: .unconditional,
        help: ArgumentHelp(
            "Under a systemd watchdog (WATCHDOG_USEC), stop the keep-alives while a run takes longer than this, so that systemd restarts the service.",
            valueName: "duration"
        )
    )
    var stallTimeout: String?

    @Option(
        name: .customLong("randomized-delay"),
        parsing: .unconditional,
        help: ArgumentHelp(
            "Delay each run by a random time up to this (systemd's RandomizedDelaySec=); the schedule's grid does not move.",
            valueName: "duration"
        )
    )
    var randomizedDelay: String?

    @Flag(
        name: .customLong("fixed-random-delay"),
        help: "With --randomized-delay: the same delay for every run, derived from --name (systemd's FixedRandomDelay=yes)."
    )
    var fixedRandomDelay = false

    @Option(
        name: .customLong("on-failure"),
        parsing: .unconditional,
        help: ArgumentHelp(
            "What a failed run (a status not retried, a timeout) does: end (stop, exit with its status; the default) or continue (report it, keep the schedule).",
            valueName: "end|continue"
        )
    )
    var onFailure: String = "end"

    @Option(
        name: .customLong("metrics-file"),
        parsing: .unconditional,
        help: ArgumentHelp(
            "Write the loop's metrics to this file in the Prometheus text format after every run, atomically (node_exporter's textfile collector).",
            valueName: "path"
        )
    )
    var metricsFile: String?

    @Option(
        name: .customLong("state-dir"),
        parsing: .unconditional,
        help: ArgumentHelp(
            "Record each run in this directory (one file per --name), so that a restart can catch up and slots are never run twice; default: $STATE_DIRECTORY when systemd sets it (StateDirectory=), else nothing is recorded.",
            valueName: "dir"
        )
    )
    var stateDirectory: String?

    @Option(
        name: .customLong("postgres"),
        parsing: .unconditional,
        help: ArgumentHelp(
            "Share the runs with every replica that names this PostgreSQL database (postgres://user:password@host:port/db): each slot of --name runs on one replica; default: $LOOPS_POSTGRES_URL.",
            valueName: "url"
        )
    )
    var postgres: String?

    @Option(
        name: .customLong("lease"),
        parsing: .unconditional,
        help: ArgumentHelp(
            "With --postgres: how long a replica's claim on a slot lasts without renewal (renewed every third of it while the command runs); a replica that dies loses its slot to another after this. Default 30s, at least 300ms.",
            valueName: "duration"
        )
    )
    var lease: String?

    @Option(
        name: .customLong("catch-up"),
        parsing: .unconditional,
        help: ArgumentHelp(
            "At start, the slots missed while loops was down (needs --state-dir, $STATE_DIRECTORY or --postgres): none (the default), latest (the latest once), all (every one, up to 100) or all:N.",
            valueName: "none|latest|all[:N]"
        )
    )
    var catchUp: String?

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command and its arguments, after '--'.", valueName: "command"))
    var command: [String] = []

    func run() async throws {
        let schedule = try self.schedule.makeSchedule()
        // What `loops next` accepts but a loop does not: an --every beyond a loop's longest
        // interval (292 years). Checked here, so that it is bad input naming the flag.
        do {
            _ = try Loop(schedule: schedule) { _ in }
        } catch let error as LoopError {
            throw CommandLineError("\(self.schedule.flag): \(error.message)")
        }
        if let count, count < 1 {
            throw CommandLineError("--count must be at least 1, got \(count)")
        }
        let retried = try retryExitCodes.map(Self.parseExitCodes) ?? []
        let grace = try Self.parseKillAfter(killAfter)
        let timeout = try self.timeout.map { try Self.parsePositiveDuration($0, option: "--timeout") }
        let stallTimeout = try self.stallTimeout.map { try Self.parsePositiveDuration($0, option: "--stall-timeout") }
        let delay = try randomizedDelay.map(Self.parseRandomizedDelay)
        if fixedRandomDelay, delay == nil {
            throw CommandLineError("--fixed-random-delay needs --randomized-delay, e.g. --randomized-delay 5m --fixed-random-delay")
        }
        let policy = try Self.parseFailurePolicy(onFailure)
        let catchUp = try self.catchUp.map(RunStoreOptions.parseCatchUp) ?? .none
        guard let program = command.first, !program.isEmpty else {
            throw CommandLineError("a command is required after '--', e.g. loops run --every 5s -- /bin/date")
        }
        let loopName = try Self.loopName(given: name, program: program)
        // Checked now, so that a typo is one line and status 2 before READY=1, not a unit that
        // systemd sees start and then fail at the first run (possibly hours later).
        if let problem = ChildProcess.problem(running: program, path: ProcessInfo.processInfo.environment["PATH"]) {
            throw CommandLineError(problem)
        }
        // Last of the checks: opening a store creates its directory, or starts a database client.
        let store = try RunStoreOptions.makeRunStore(
            stateDirectory: stateDirectory,
            postgres: postgres,
            lease: lease,
            environment: ProcessInfo.processInfo.environment,
            logger: Self.logger
        )
        if store == nil, let given = self.catchUp {
            throw CommandLineError("--catch-up \(given) needs a store: --state-dir DIR, $STATE_DIRECTORY or --postgres URL")
        }
        // A write to a closed pipe (stderr read by a logger that died) must fail with EPIPE,
        // not kill loops and orphan its run. Runs get the default action back (ChildProcess).
        signal(SIGPIPE, SIG_IGN)

        let options = RunOptions(
            name: loopName,
            timeout: timeout.map { ($0, self.timeout ?? "") },
            stallTimeout: stallTimeout,
            randomizedDelay: delay.map { fixedRandomDelay ? .fixed(upTo: $0) : .upTo($0) },
            keepsScheduleOnFailure: policy == .keepSchedule,
            store: store,
            catchUp: catchUp
        )
        // Written once now: a path that cannot be written is bad input, before READY=1.
        let metrics = try metricsFile.map { path in
            try MetricsFile(path: path, loopName: loopName) { line in
                StandardStreams.writeError("loops: " + line + "\n")
            }
        }
        let runner = CommandRunner(
            command: command,
            retried: retried,
            killAfter: (grace, killAfter),
            options: options,
            metrics: metrics,
            notifier: SystemdNotifier()
        )
        let status = try await runner.run(schedule: schedule, count: count)
        if status != 0 { throw ExitCode(status) }
    }

    /// Where the loop's, the watchdog's and the store's lines go: stderr, as `loops: <level>: …`
    /// (never stdout).
    static let logger = Logger(label: "loops") { _ in CommandLogHandler() }

    /// `--name`, or the command's basename (`/usr/local/bin/backup` → `backup`).
    static func loopName(given: String?, program: String) throws -> String {
        if let given {
            guard !given.isEmpty else { throw CommandLineError("--name must not be empty") }
            guard !given.contains(where: \.isNewline) else {
                throw CommandLineError("--name must be one line")
            }
            return given
        }
        let base = program.split(separator: "/").last.map(String.init) ?? program
        return base.isEmpty ? program : base
    }

    /// `--timeout`, `--stall-timeout`: a duration in the `--every` syntax, more than zero.
    static func parsePositiveDuration(_ text: String, option: String) throws -> Duration {
        let duration: Duration
        do {
            duration = try DurationFormat.parse(text)
        } catch let error as CommandLineError {
            throw CommandLineError("\(option): \(error.message)")
        }
        guard duration > .zero else {
            throw CommandLineError("\(option) must be more than 0, got '\(text)'")
        }
        return duration
    }

    /// `--randomized-delay`: a duration in the `--every` syntax; 0 is no delay, as in systemd.
    static func parseRandomizedDelay(_ text: String) throws -> Duration {
        do {
            return try DurationFormat.parse(text)
        } catch let error as CommandLineError {
            throw CommandLineError("--randomized-delay: \(error.message)")
        }
    }

    /// `--on-failure end|continue`.
    static func parseFailurePolicy(_ text: String) throws -> FailurePolicy {
        switch text {
        case "end": return .endLoop
        case "continue": return .keepSchedule
        default: throw CommandLineError("--on-failure: '\(text)' is not end or continue")
        }
    }

    /// `75,111` → {75, 111}; each must be 1…255 (0 is success, not an error to retry).
    static func parseExitCodes(_ text: String) throws -> Set<Int32> {
        var codes: Set<Int32> = []
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let trimmed = item.trimmingCharacters(in: .whitespaces)
            guard let code = Int32(trimmed), (1...255).contains(code) else {
                throw CommandLineError("--retry-exit-codes: '\(trimmed)' is not an exit status from 1 to 255")
            }
            codes.insert(code)
        }
        return codes
    }

    /// `--kill-after`: a duration in the `--every` syntax, more than zero.
    static func parseKillAfter(_ text: String) throws -> Duration {
        try parsePositiveDuration(text, option: "--kill-after")
    }
}

/// A run that exited with a status from `--retry-exit-codes`: transient, so the loop retries it.
struct RetriedExit: TransientError, CustomStringConvertible {
    let termination: ChildTermination
    var description: String { "the command \(termination)" }
}

/// The options of `loops run` that shape the loop, parsed and checked.
struct RunOptions: Sendable {
    /// `--name`, or the command's basename.
    let name: String
    /// `--timeout`, and as the user wrote it.
    let timeout: (duration: Duration, text: String)?
    /// `--stall-timeout`.
    let stallTimeout: Duration?
    /// `--randomized-delay`, with `--fixed-random-delay`.
    let randomizedDelay: RandomizedDelay?
    /// `--on-failure continue`.
    let keepsScheduleOnFailure: Bool
    /// `--postgres`, `--state-dir` or `$STATE_DIRECTORY`.
    let store: (any RunStore)?
    /// `--catch-up`.
    let catchUp: CatchUp
}

/// A run that failed in a way that ends the loop (or, with `--on-failure continue`, is
/// reported and skipped).
struct CommandFailed: Error, CustomStringConvertible {
    let termination: ChildTermination
    var description: String { "the command \(termination)" }
}

/// SIGTERM and SIGINT (one bit each, `1 << signal`) received and not yet handled; see
/// `CommandRunner.installSignalHandlers(loop:)`.
private let receivedSignals = Atomic<UInt32>(0)

/// The write end of the pipe that wakes the handling side, -1 until it exists.
private let signalWakeDescriptor = Atomic<Int32>(-1)

/// The signal handler: records the signal and wakes the reader of the pipe. Both an atomic
/// update and `write(2)` are async-signal-safe; the pipe is non-blocking, and a full pipe
/// already holds a wake-up.
private func recordSignal(_ number: Int32) {
    guard number > 0, number < 32 else { return }
    receivedSignals.bitwiseOr(UInt32(1) << UInt32(number), ordering: .sequentiallyConsistent)
    let descriptor = signalWakeDescriptor.load(ordering: .sequentiallyConsistent)
    guard descriptor >= 0 else { return }
    let savedErrno = errno
    var byte: UInt8 = 1
    _ = write(descriptor, &byte, 1)
    errno = savedErrno
}

/// The state shared by the loop body, the signal handlers and the exit path.
private struct RunnerState {
    /// SIGTERM arrived: no new run starts, a failed one is not retried.
    var stopRequested = false
    /// SIGINT arrived: the loop was cancelled.
    var interrupted = false
    /// A child is running now.
    var childRunning = false
    /// `READY=1` was sent.
    var announcedReady = false
    /// The error that ended the loop (from `onError`).
    var failure: (any Error)?
    /// `STOPPING=1` was sent.
    var announcedStopping = false
    /// The watchdog must not start (any more): the loop has reached `afterLoop`.
    var watchdogStopped = false
}

/// Runs the command on a `Loop`, wires signals and systemd, and computes the exit status.
private final class CommandRunner: Sendable {
    let command: [String]
    let retried: Set<Int32>
    /// How long a SIGTERM-ed run has before SIGKILL, and that duration as the user wrote it.
    let killAfter: (duration: Duration, text: String)
    let options: RunOptions
    let metrics: MetricsFile?
    let notifier: SystemdNotifier
    let state = LockedValue(RunnerState())
    /// A failed notification was reported; the later ones are not (see ``notify(_:)``).
    let reportedNotifyFailure = Atomic<Bool>(false)
    /// See ``Run/logger``.
    let logger = Run.logger

    init(
        command: [String],
        retried: Set<Int32>,
        killAfter: (duration: Duration, text: String),
        options: RunOptions,
        metrics: MetricsFile?,
        notifier: SystemdNotifier
    ) {
        self.command = command
        self.retried = retried
        self.killAfter = killAfter
        self.options = options
        self.metrics = metrics
        self.notifier = notifier
    }

    /// The environment of each run: that of `loops` without the systemd notification
    /// variables, which address `loops` itself (the service manager ignores other PIDs by
    /// default, and a run must not feed the watchdog for `loops`).
    var childEnvironment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            environment[key] = nil
        }
        return environment
    }

    func run(schedule: Schedule, count: Int?) async throws -> Int32 {
        let environment = childEnvironment
        let loop: Loop
        do {
            loop = try Loop(
                schedule: schedule,
                count: count,
                reconnect: true,
                name: options.name,
                timeout: options.timeout?.duration,
                onFailure: options.keepsScheduleOnFailure ? .keepSchedule : .endLoop,
                randomizedDelay: options.randomizedDelay,
                store: options.store,
                catchUp: options.catchUp,
                logger: logger,
                metrics: metrics?.factory
            ) { [self] loop in
                try await runOnce(loop: loop, environment: environment)
            }
        } catch let error as LoopError {
            throw CommandLineError(error.message)
        }
        // Only the listed exit statuses are transient (not the library's defaults).
        loop.clearErrorTypes()
        loop.addErrorType(RetriedExit.self)
        loop.onError { [self] loop, error in
            failed(error, in: loop)
        }
        // The metrics exist (at zero) from start-up on.
        metrics?.flush()
        let watchdog = try makeWatchdog(guarding: loop)
        // The watchdog stops before the loop has ended: once ended by a failure the loop is no
        // longer healthy, and a keep-alive check then would log it as wedged. (`afterLoop` runs
        // while the loop still counts as running.)
        loop.afterLoop { [self] _ in
            state.withLock { $0.watchdogStopped = true }
            watchdog?.cancel()
            await watchdog?.task?.value
        }

        let signals = try installSignalHandlers(loop: loop)
        defer { for source in signals { source.cancel() } }

        // READY=1 is always the first message: it is sent here, synchronously, before the loop
        // (whose runs send STATUS=) and the watchdog (WATCHDOG=1, the first one at its start)
        // exist as tasks. A watchdog started first, or READY sent from the loop's task, races
        // with the watchdog's first keep-alive.
        announceReady()
        let task = try loop.start()
        // A signal handled before the loop was running found nothing to stop or cancel.
        let (stoppedEarly, interruptedEarly) = state.withLock { ($0.stopRequested, $0.interrupted) }
        if interruptedEarly {
            loop.cancel()
        } else if stoppedEarly {
            terminate(loop: loop)
        }
        let watchdogTask = state.withLock { state in
            state.watchdogStopped ? nil : try? watchdog?.start()
        }
        await task.value
        // No keep-alive after the final STOPPING=1: the watchdog's task has ended before it.
        watchdog?.cancel()
        await watchdogTask?.value
        announceStopping()

        metrics?.flush()

        let (interrupted, failure) = state.withLock { ($0.interrupted, $0.failure) }
        switch failure {
        case let error as LoopError where error.code == .timedOut:
            report("\(ranPastTimeout); stopping")
            return Self.timedOutStatus
        case let failed as CommandFailed:
            report("\(commandLine) \(failed.termination); stopping")
            return failed.termination.shellStatus
        case let spawn as SpawnError:
            report(spawn.description)
            return spawn.shellStatus
        case let other?:
            report("\(other)")
            return 1
        case nil:
            return interrupted ? 128 + SIGINT : 0
        }
    }

    /// The status `loops` exits with when a run timed out and that ended the loop: 124, as
    /// `timeout(1)` does.
    static let timedOutStatus: Int32 = 124

    /// `'cmd' ran past --timeout 5m and was terminated`.
    private var ranPastTimeout: String {
        "\(commandLine) ran past --timeout \(options.timeout?.text ?? "") and was terminated"
    }

    /// `onError`: a failed run (a status not retried, a timeout, a spawn failure) ends the loop
    /// (its error decides the exit status), or, with `--on-failure continue`, is reported in one
    /// line and the schedule goes on.
    private func failed(_ error: any Error, in loop: Loop) {
        let timedOut = (error as? LoopError)?.code == .timedOut
        let description: String
        switch error {
        case _ where timedOut: description = ranPastTimeout
        case let failed as CommandFailed: description = "\(commandLine) \(failed.termination)"
        case let spawn as SpawnError: description = spawn.description
        default: description = "\(error)"
        }
        if timedOut {
            notify { try $0.status("Run \(loop.currentLoop + 1) ran past --timeout \(options.timeout?.text ?? "") and was terminated") }
        }
        guard options.keepsScheduleOnFailure else {
            state.withLock { $0.failure = error }
            return
        }
        let stopping = state.withLock { $0.stopRequested }
        report(description + (stopping ? "" : "; continuing on the schedule (--on-failure continue)"))
    }

    /// One iteration: spawn, wait, and classify the exit status.
    private func runOnce(loop: Loop, environment: [String: String]) async throws {
        let proceed = state.withLock { state in
            if state.stopRequested { return false }
            state.childRunning = true
            return true
        }
        // A retry after SIGTERM (the back-off ended before the stop did), or a signal that
        // arrived before the loop had started (stop() and cancel() then had nothing to end):
        // end quietly.
        guard proceed else {
            loop.stop()
            return
        }
        defer { state.withLock { $0.childRunning = false } }

        let number = loop.currentLoop + 1
        notify { try $0.status("Run \(number): running \(commandLine)") }
        var environment = environment
        environment["LOOPS_NAME"] = options.name
        environment["LOOPS_ITERATION"] = String(loop.currentLoop)
        environment["LOOPS_SCHEDULED_AT"] = InstantFormat.format(loop.scheduledInstant ?? Date())
        if let token = loop.fencingToken { environment["LOOPS_FENCING_TOKEN"] = String(token) }
        let termination: ChildTermination
        do {
            termination = try await ChildProcess.run(
                command,
                environment: environment,
                killAfter: killAfter.duration
            ) { [self] pid in
                report("\(commandLine) (pid \(pid)) did not exit within \(killAfter.text) of SIGTERM; sending SIGKILL")
            }
        } catch let error as SpawnError {
            metrics?.runEnded(status: error.shellStatus, at: Date())
            throw error
        }
        metrics?.runEnded(status: termination.shellStatus, at: Date())
        switch termination {
        case .exited(0):
            let next = loop.nextIteration.map { "; next at " + InstantFormat.format($0) } ?? ""
            notify { try $0.status("Run \(number) exited with status 0\(next)") }
        // A run killed by signal N is status 128 + N, as a shell reports it: listing 137 retries
        // a run the OOM killer ended, like any other listed status.
        case _ where retried.contains(termination.shellStatus):
            if state.withLock({ $0.stopRequested }) {
                throw CommandFailed(termination: termination)
            }
            notify { try $0.status("Run \(number) \(termination); retrying after a back-off") }
            report("\(commandLine) \(termination); retrying after a back-off")
            throw RetriedExit(termination: termination)
        default:
            notify { try $0.status("Run \(number) \(termination)") }
            throw CommandFailed(termination: termination)
        }
    }

    /// The watchdog's keep-alive loop, nil without `WATCHDOG_USEC`: it guards the run loop
    /// (``SystemdNotifier/watchdogLoop(guarding:clock:logger:)``), so keep-alives stop while a run
    /// takes longer than `--stall-timeout` (or `--timeout` plus 30 s) or the loop oversleeps by
    /// more than 30 s, and one `.critical` line says which. Its keep-alives go through
    /// ``notify(_:)``, so a socket that is gone costs one line, not one per keep-alive.
    private func makeWatchdog(guarding loop: Loop) throws -> Loop? {
        do {
            _ = try notifier.watchdogInterval
        } catch {
            throw CommandLineError("WATCHDOG_USEC: \(error)")
        }
        return try notifier.watchdogLoop(
            guarding: [GuardedLoop(loop, stallTimeout: options.stallTimeout)],
            clock: .suspending,
            logger: logger
        ) { [self] in
            notify { try $0.watchdog() }
        }
    }

    /// SIGTERM → stop after the current run (or at once when none runs); SIGINT → cancel, which
    /// sends the running child SIGTERM.
    ///
    /// A handler of ours records each signal and writes to a pipe that a Dispatch read source
    /// watches (the self-pipe pattern), rather than Dispatch's own signal sources: those
    /// rely on a signalfd, and the signals are not blocked in every thread (the main thread
    /// waits in `sigsuspend` with an empty mask once `dispatch_main` has taken it), so Dispatch
    /// re-sends a signal delivered elsewhere to the thread that registered the source — which
    /// can be a worker thread that has exited since, and the signal is lost (a SIGINT that
    /// never reached the running command, about one time in 30 on a loaded machine). A signal
    /// that arrives before the read source runs stays recorded and is handled when it does.
    private func installSignalHandlers(loop: Loop) throws -> [any DispatchSourceRead] {
        let queue = DispatchQueue(label: "loops.signals")
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else {
            throw CommandLineError("cannot create the pipe for signals: \(String(cString: strerror(errno)))")
        }
        for end in ends {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
        }
        let descriptor = ends[0]
        signalWakeDescriptor.store(ends[1], ordering: .sequentiallyConsistent)
        signal(SIGTERM, recordSignal)
        signal(SIGINT, recordSignal)
        let source = DispatchSource.makeReadSource(fileDescriptor: descriptor, queue: queue)
        source.setEventHandler { [self] in
            var drained = [UInt8](repeating: 0, count: 64)
            while read(descriptor, &drained, drained.count) > 0 {}
            let received = receivedSignals.exchange(0, ordering: .sequentiallyConsistent)
            if received & (1 << SIGTERM) != 0 { terminate(loop: loop) }
            if received & (1 << SIGINT) != 0 { interrupt(loop: loop) }
        }
        source.resume()
        return [source]
    }

    /// SIGTERM: no new run; the running one finishes; between runs the loop ends at once.
    private func terminate(loop: Loop) {
        let childRunning = state.withLock { state in
            state.stopRequested = true
            return state.childRunning
        }
        announceStopping()
        loop.stop()
        // Between runs (asleep or in a retry back-off) there is nothing to finish.
        if !childRunning { loop.cancel() }
    }

    /// SIGINT: cancel the loop, which sends the running child SIGTERM.
    private func interrupt(loop: Loop) {
        state.withLock {
            $0.interrupted = true
            $0.stopRequested = true
        }
        announceStopping()
        loop.cancel()
    }

    private var commandLine: String {
        "'" + command.joined(separator: " ") + "'"
    }

    /// Sends `READY=1` unless `STOPPING=1` was already sent (a signal during start-up). Both are
    /// sent under the state lock, so they can never arrive in the other order.
    private func announceReady() {
        state.withLock { state in
            guard !state.announcedReady, !state.announcedStopping else { return }
            state.announcedReady = true
            notify { try $0.ready(status: "Started; running \(commandLine) on schedule") }
        }
    }

    /// Sends `STOPPING=1` once (see ``announceReady()`` for the lock).
    private func announceStopping() {
        state.withLock { state in
            guard !state.announcedStopping else { return }
            state.announcedStopping = true
            notify { try $0.stopping() }
        }
    }

    /// Sends a notification. A failure never ends the loop (the runs are the service; systemd
    /// judges it by them and by its own timeouts), and only the first is reported: a socket
    /// that is gone fails every STATUS= and keep-alive, and one line says it all.
    private func notify(_ send: (SystemdNotifier) throws -> Bool) {
        do {
            _ = try send(notifier)
        } catch {
            guard !reportedNotifyFailure.exchange(true, ordering: .relaxed) else { return }
            let socket = ProcessInfo.processInfo.environment["NOTIFY_SOCKET"] ?? ""
            // The message is not quoted: it may span lines (READY=1 with STATUS=).
            let reason = (error as? SystemdError).map { "\(String(cString: strerror($0.errno))) (errno \($0.errno))" } ?? "\(error)"
            report(
                "warning: cannot notify systemd at NOTIFY_SOCKET=\(socket): \(reason); "
                    + "the loop runs on and further notification failures are not reported"
            )
        }
    }

    private func report(_ line: String) {
        StandardStreams.writeError("loops: " + line + "\n")
    }
}
