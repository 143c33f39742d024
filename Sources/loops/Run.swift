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
/// its signal) when a run fails with a status that is not retried; 127/126 when the command
/// cannot be started; 130 after SIGINT; 2 for bad input.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command on a schedule, as a daemon (systemd notify and watchdog aware).",
        discussion: """
            Exactly one of --every, --times, --calendar and --cron gives the schedule; the \
            command follows '--'. A run that exits with a status listed in --retry-exit-codes is \
            retried after an exponential back-off (not counted); any other non-zero status ends \
            the loop and loops exits with it (128+N for a child killed by signal N, 127/126 when \
            the command cannot be started). SIGTERM stops after the current run (exit 0); SIGINT \
            sends the running command SIGTERM, waits for it and exits 130. Under systemd \
            (NOTIFY_SOCKET set) loops sends READY=1, a STATUS= line per run, STOPPING=1, and \
            WATCHDOG=1 every half of WATCHDOG_USEC.
            """
    )

    @OptionGroup var schedule: ScheduleOptions

    @Option(help: "Stop after this many successful runs (at least 1); default: run until stopped.")
    var count: Int?

    @Option(
        name: .customLong("retry-exit-codes"),
        help: ArgumentHelp(
            "Exit statuses that are retried with back-off, comma-separated: 75,111.",
            valueName: "codes"
        )
    )
    var retryExitCodes: String?

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command and its arguments, after '--'.", valueName: "command"))
    var command: [String] = []

    func run() async throws {
        let schedule = try schedule.makeSchedule()
        if let count, count < 1 {
            throw CommandLineError("--count must be at least 1, got \(count)")
        }
        let retried = try retryExitCodes.map(Self.parseExitCodes) ?? []
        guard let program = command.first, !program.isEmpty else {
            throw CommandLineError("a command is required after '--', e.g. loops run --every 5s -- /bin/date")
        }

        let runner = CommandRunner(command: command, retried: retried, notifier: SystemdNotifier())
        let status = try await runner.run(schedule: schedule, count: count)
        if status != 0 { throw ExitCode(status) }
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
}

/// A run that exited with a status from `--retry-exit-codes`: transient, so the loop retries it.
struct RetriedExit: TransientError, CustomStringConvertible {
    let termination: ChildTermination
    var description: String { "the command \(termination)" }
}

/// A run that failed in a way that ends the loop.
struct CommandFailed: Error, CustomStringConvertible {
    let termination: ChildTermination
    var description: String { "the command \(termination)" }
}

/// SIGTERM and SIGINT (one bit each, `1 << signal`) that arrived before Dispatch's signal sources
/// took them over; see `CommandRunner.installSignalHandlers(loop:)`.
private let earlySignals = Atomic<UInt32>(0)

/// The signal handler until Dispatch installs its own: records the signal, nothing more (an
/// atomic store is async-signal-safe).
private func recordEarlySignal(_ number: Int32) {
    guard number > 0, number < 32 else { return }
    earlySignals.bitwiseOr(UInt32(1) << UInt32(number), ordering: .relaxed)
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
}

/// Runs the command on a `Loop`, wires signals and systemd, and computes the exit status.
private final class CommandRunner: Sendable {
    let command: [String]
    let retried: Set<Int32>
    let notifier: SystemdNotifier
    let state = LockedValue(RunnerState())
    let logger = Logger(label: "loops")

    init(command: [String], retried: Set<Int32>, notifier: SystemdNotifier) {
        self.command = command
        self.retried = retried
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
        let loop = try Loop(schedule: schedule, count: count, reconnect: true, logger: logger) { [self] loop in
            try await runOnce(loop: loop, environment: environment)
        }
        // Only the listed exit statuses are transient (not the library's defaults).
        loop.clearErrorTypes()
        loop.addErrorType(RetriedExit.self)
        loop.onError { [self] _, error in
            state.withLock { $0.failure = error }
        }
        let watchdog: Loop?
        do {
            watchdog = try notifier.watchdogLoop(logger: logger)
        } catch {
            throw CommandLineError("WATCHDOG_USEC: \(error)")
        }

        let signals = await installSignalHandlers(loop: loop)
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
        let watchdogTask = try? watchdog?.start()
        await task.value
        // No keep-alive after the final STOPPING=1: the watchdog's task has ended before it.
        watchdog?.cancel()
        await watchdogTask?.value
        announceStopping()

        let (interrupted, failure) = state.withLock { ($0.interrupted, $0.failure) }
        switch failure {
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
        let termination = try await ChildProcess.run(command, environment: environment)
        switch termination {
        case .exited(0):
            let next = loop.nextIteration.map { "; next at " + InstantFormat.format($0) } ?? ""
            notify { try $0.status("Run \(number) exited with status 0\(next)") }
        case .exited(let code) where retried.contains(code):
            if state.withLock({ $0.stopRequested }) {
                throw CommandFailed(termination: termination)
            }
            notify { try $0.status("Run \(number) exited with status \(code); retrying after a back-off") }
            report("\(commandLine) exited with status \(code); retrying after a back-off")
            throw RetriedExit(termination: termination)
        default:
            throw CommandFailed(termination: termination)
        }
    }

    /// SIGTERM → stop after the current run (or at once when none runs); SIGINT → cancel, which
    /// sends the running child SIGTERM.
    ///
    /// Returns once both signal sources are registered. Dispatch installs its own handler for a
    /// signal only then, on its manager thread; until then a handler of ours records the signal
    /// (with the default action it would kill `loops`; ignored, it would be lost, and `loops`
    /// would run on after a SIGTERM), and a recorded signal is acted on once the sources are
    /// in place.
    private func installSignalHandlers(loop: Loop) async -> [any DispatchSourceSignal] {
        let queue = DispatchQueue(label: "loops.signals")
        _ = earlySignals.load(ordering: .relaxed)  // initialised before a handler can read it
        signal(SIGTERM, recordEarlySignal)
        signal(SIGINT, recordEarlySignal)
        let terminate = DispatchSource.makeSignalSource(signal: SIGTERM, queue: queue)
        terminate.setEventHandler { [self] in self.terminate(loop: loop) }
        let interrupt = DispatchSource.makeSignalSource(signal: SIGINT, queue: queue)
        interrupt.setEventHandler { [self] in self.interrupt(loop: loop) }
        let registered = DispatchGroup()
        for source in [terminate, interrupt] {
            registered.enter()
            source.setRegistrationHandler { registered.leave() }
            source.resume()
        }
        // Dispatch calls no registration handler for a source it could not register (no file
        // descriptor left for its signalfd): then go on after a while rather than hang.
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumed = LockedValue(false)
            let resumeOnce: @Sendable () -> Void = {
                if resumed.withLock({ done in defer { done = true }; return !done }) { continuation.resume() }
            }
            registered.notify(queue: queue, execute: resumeOnce)
            queue.asyncAfter(deadline: .now() + 5, execute: resumeOnce)
        }
        let early = earlySignals.load(ordering: .relaxed)
        if early & (1 << SIGINT) != 0 {
            queue.async { [self] in self.interrupt(loop: loop) }
        } else if early & (1 << SIGTERM) != 0 {
            queue.async { [self] in self.terminate(loop: loop) }
        }
        // The handlers above run in order on `queue`: past this point the early ones are in `state`.
        await withCheckedContinuation { continuation in queue.async { continuation.resume() } }
        return [terminate, interrupt]
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

    /// Sends a notification; a failure is reported once per call and never ends the loop.
    private func notify(_ send: (SystemdNotifier) throws -> Bool) {
        do {
            _ = try send(notifier)
        } catch {
            report("systemd notification failed: \(error)")
        }
    }

    private func report(_ line: String) {
        FileHandle.standardError.write(Data(("loops: " + line + "\n").utf8))
    }
}
