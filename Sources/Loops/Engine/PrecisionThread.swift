import CLoopsCore
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The thread of a ``PrecisionEngine``: it blocks in `epoll_wait` on the timerfds of its
/// ``ClockTimer``s and on an eventfd, resumes the sleepers a timerfd releases, and runs the
/// jobs of the tasks that prefer it — so a loop woken by a timer runs its body on the very
/// thread that woke, with no hop to another thread (one context switch per tick).
///
/// It runs the jobs ``PrecisionEngine`` (the `TaskExecutor`) hands it, serially: one thread
/// runs every job, one at a time.
///
/// The thread holds this object, never the engine, so that releasing the last reference to a
/// non-shared engine can stop the thread (see ``shutdown()``). Jobs run with the engine's
/// executor identity, which the engine registers once it exists (``adopt(executor:)``); the
/// tasks that prefer the engine keep it alive while their jobs are queued.
final class PrecisionThread: Sendable {
    /// Token of the eventfd in the epoll set; timer tokens are `clock.rawValue + 1`.
    private static let wakeToken: UInt64 = 0

    /// Where the thread is in its life. Every transition happens under `state`'s lock.
    private enum Lifecycle {
        /// Running jobs or waiting for them. `waiting` is true while the thread is (about to
        /// be) blocked in `epoll_wait` with no job queued: only then does an enqueue need the
        /// eventfd.
        case running(waiting: Bool)
        /// `shutdown()` was called (failure nil) or `epoll_wait` failed: the thread exits after
        /// its current batch. Timers asked for from now on fail with `failure`, as the sleepers
        /// that were waiting did.
        case stopping(failure: LoopError?)
        /// The thread has left its loop and closed its descriptors; jobs go to the global
        /// executor from now on.
        case exited(failure: LoopError?)
    }

    private struct State {
        var lifecycle = Lifecycle.running(waiting: false)
        /// Jobs to run, in order; swapped with the thread's own emptied array on each drain, so
        /// that neither reallocates per tick.
        var jobs: [UnownedJob] = []
        /// The executor jobs run on: the engine's identity, so that a task preferring the
        /// engine is seen as already on it (no hop back). Unowned: see the type's comment.
        var executor: UnownedTaskExecutor?
        /// The thread's handle, for identity checks (unlike `thread`, kept after the join).
        var handle: pthread_t = 0
    }

    private let state = LockedValue(State())
    /// The epoll set the thread waits on (read by tests, to arm faults on it).
    let epollDescriptor: Int32
    /// The eventfd that wakes the thread.
    let wakeDescriptor: Int32
    /// The timers whose fds the thread waits on.
    let registry: TimerRegistry
    /// The pthread, for joining; 0 once joined or detached.
    private let thread = LockedValue<pthread_t>(0)
    /// The thread's `pthread_self()`, stored by the thread itself when its loop begins: an
    /// enqueue compares it with its own thread's without a lock (no other thread can match).
    private let loopThread = Atomic<UInt>(0)
    /// Jobs the thread queues itself while its loop runs (a wake resuming its sleepers, a job
    /// queuing another): only the thread touches them, so they take no lock, and the thread
    /// runs them before it looks at the shared queue.
    private nonisolated(unsafe) let ownJobs = UnsafeMutablePointer<OwnJobs>.allocate(capacity: 1)

    private struct OwnJobs {
        var jobs: [UnownedJob] = []
        /// True while the loop runs; false before and once it finishes, when jobs the thread
        /// queues (the resumes of the sleepers it fails) take the shared path.
        var open = false
    }

    /// Opens the epoll set and the eventfd and starts the thread, which waits on the timers of
    /// `registry` as they are created.
    init(name: String, registry: TimerRegistry) throws(LoopError) {
        var epfd: Int32 = -1
        var code = cloops_epoll_create(&epfd)
        guard code == 0 else { throw TimerCore.error("epoll_create1", errno: code) }
        var eventfd: Int32 = -1
        code = cloops_eventfd_create(&eventfd)
        guard code == 0 else {
            TimerCore.close(epfd)
            throw TimerCore.error("eventfd", errno: code)
        }
        code = cloops_epoll_add(epfd, eventfd, Self.wakeToken)
        guard code == 0 else {
            TimerCore.close(eventfd)
            TimerCore.close(epfd)
            throw TimerCore.error("epoll_ctl(eventfd)", errno: code)
        }
        self.epollDescriptor = epfd
        self.wakeDescriptor = eventfd
        self.registry = registry
        ownJobs.initialize(to: OwnJobs())
        try start(name: name)
    }

    deinit {
        ownJobs.deinitialize(count: 1)
        ownJobs.deallocate()
    }

    private func start(name: String) throws(LoopError) {
        // The thread's reference to self, released when the thread function returns.
        let context = Unmanaged.passRetained(ThreadContext(thread: self, name: name)).toOpaque()
        var handle = pthread_t()
        let code = pthread_create(&handle, nil, { raw in
            guard let raw else { return nil }
            let context = Unmanaged<ThreadContext>.fromOpaque(raw).takeRetainedValue()
            Thread.current.name = context.name
            // Foundation's setter hands the whole name to `pthread_setname_np`, which refuses
            // one longer than the kernel keeps (ERANGE) and leaves the creator's name in place.
            _ = cloops_thread_set_name(PrecisionThread.kernelName(context.name))
            context.thread.runLoop()
            return nil
        }, context)
        guard code == 0 else {
            Unmanaged<ThreadContext>.fromOpaque(context).release()
            TimerCore.close(wakeDescriptor)
            TimerCore.close(epollDescriptor)
            throw TimerCore.error("pthread_create", errno: code)
        }
        thread.withLock { $0 = handle }
        state.withLock { $0.handle = handle }
    }

    /// The pthread that runs the jobs (for tests: "does this body run on the engine's thread").
    var threadHandle: pthread_t { state.withLock { $0.handle } }

    // MARK: Jobs

    /// Sets the executor identity jobs run with (the engine's).
    func adopt(executor: UnownedTaskExecutor) {
        state.withLock { $0.executor = executor }
    }

    /// Queues a job; wakes the thread through the eventfd only when it is blocked. A job
    /// queued from the thread itself (a sleeper resumed by a timer) costs no system call.
    func enqueue(_ job: UnownedJob) {
        if pthread_equal(pthread_self(), pthread_t(loopThread.load(ordering: .relaxed))) != 0, ownJobs.pointee.open {
            ownJobs.pointee.jobs.append(job)
            return
        }
        let forward: Bool = state.withLock { state in
            switch state.lifecycle {
            case .exited:
                return true
            case .running(waiting: true):
                state.jobs.append(job)
                state.lifecycle = .running(waiting: false)
                // The thread itself (resuming the sleepers of a wake) is not blocked: it takes
                // its jobs before it waits again.
                if pthread_equal(pthread_self(), state.handle) != 0 { return false }
                // Under the lock, so the thread cannot have closed the eventfd (it closes it
                // only after entering `.exited` under this lock).
                _ = cloops_eventfd_signal(wakeDescriptor)
                return false
            case .running(waiting: false), .stopping:
                // The thread drains its jobs before it waits again or exits.
                state.jobs.append(job)
                return false
            }
        }
        // After shutdown, tasks that still prefer this executor run on the global one rather
        // than never.
        if forward { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
    }

    // MARK: Timers

    /// The timer of `clock`, created and added to the epoll set on first use.
    func timer(for clock: EngineClock) throws(LoopError) -> ClockTimer {
        try registry.timer(for: clock, watch: watch)
    }

    /// Adds a new timer's fd to the epoll set (``TimerRegistry``'s `watch`): refused once the
    /// thread is stopping, since nothing would read the fd and its sleepers would never wake.
    func watch(_ timer: ClockTimer) throws(LoopError) {
        try state.withLock { (state: inout State) throws(LoopError) in
            switch state.lifecycle {
            case .running:
                break
            case .stopping(let failure), .exited(let failure):
                throw failure ?? LoopError(.systemTimer, "the precision engine was shut down")
            }
            // Under the thread's lock: `finish()` enters `.exited` under it before it closes
            // the epoll set, so the set is still open here.
            let code = cloops_epoll_add(epollDescriptor, timer.descriptor, UInt64(timer.clock.rawValue) + 1)
            guard code == 0 else {
                throw TimerCore.error("epoll_ctl(timerfd \(TimerCore.kernelName(timer.clock)))", errno: code)
            }
        }
    }

    /// Whether the thread has exited and closed its descriptors.
    var hasExited: Bool {
        state.withLock { state in
            if case .exited = state.lifecycle { return true }
            return false
        }
    }

    /// The descriptors the thread owns besides the timers (for leak and fault tests).
    var ownDescriptors: [Int32] { [epollDescriptor, wakeDescriptor] }

    // MARK: Lifecycle

    /// Stops the thread: it finishes the jobs it holds, fails the sleepers still waiting
    /// (their loops report a ``LoopError``), closes every descriptor and exits. Waits for the
    /// exit unless called on the thread itself. Idempotent.
    func shutdown() {
        state.withLock { state in
            guard case .running = state.lifecycle else { return }
            state.lifecycle = .stopping(failure: nil)
            _ = cloops_eventfd_signal(wakeDescriptor)
        }
        let handle: pthread_t = thread.withLock { handle in
            defer { handle = 0 }
            return handle
        }
        guard handle != 0 else { return }
        if pthread_equal(handle, pthread_self()) != 0 {
            pthread_detach(handle)
        } else {
            pthread_join(handle, nil)
        }
    }

    private enum Step {
        /// Run the jobs just taken (the thread's `batch`) with this executor identity.
        case run(UnownedTaskExecutor?)
        case wait
        case exit
    }

    /// The thread's body: run queued jobs, else block in epoll_wait; until shut down.
    private func runLoop() {
        var tokens = [UInt64](repeating: 0, count: 4)
        // Reused from wake to wake and drain to drain, so that neither allocates per tick.
        var reached: [ClockTimer.Sleeper] = []
        var batch: [UnownedJob] = []
        var executor: UnownedTaskExecutor?
        loopThread.store(UInt(pthread_self()), ordering: .relaxed)
        ownJobs.pointee.open = true
        while true {
            // The jobs the thread queued itself come first: nothing else can add to them.
            while !ownJobs.pointee.jobs.isEmpty {
                swap(&ownJobs.pointee.jobs, &batch)
                let identity = executor ?? state.withLock { $0.executor } ?? globalConcurrentExecutor.asUnownedTaskExecutor()
                for job in batch { job.runSynchronously(on: identity) }
                batch.removeAll(keepingCapacity: true)
            }
            let step: Step = state.withLock { state in
                if !state.jobs.isEmpty {
                    swap(&state.jobs, &batch)
                    if case .running = state.lifecycle { state.lifecycle = .running(waiting: false) }
                    return .run(state.executor)
                }
                switch state.lifecycle {
                case .running:
                    state.lifecycle = .running(waiting: true)
                    return .wait
                case .stopping, .exited:
                    return .exit
                }
            }
            switch step {
            case .run(let adopted):
                executor = adopted
                let identity = adopted ?? globalConcurrentExecutor.asUnownedTaskExecutor()
                for job in batch { job.runSynchronously(on: identity) }
                batch.removeAll(keepingCapacity: true)
            case .wait:
                var count: Int32 = 0
                let code = tokens.withUnsafeMutableBufferPointer {
                    cloops_epoll_wait(epollDescriptor, $0.baseAddress, Int32($0.count), -1, &count)
                }
                // Still marked waiting until the next drain: an enqueue from another thread in
                // between signals the eventfd once more (one spare wake), and saves a lock per
                // wake here.
                guard code == 0 else {
                    // Not EINTR (retried in C): waiting again would fail again, a busy spin.
                    // The engine shuts down; its sleepers, and later ones, fail with the error.
                    let failure = TimerCore.error("epoll_wait", errno: code)
                    state.withLock { $0.lifecycle = .stopping(failure: failure) }
                    closeOwnJobs()
                    finish(failingSleepersWith: failure)
                    // Nobody will join a thread that stopped by itself.
                    thread.withLock { handle in
                        if handle != 0 { pthread_detach(handle) }
                        handle = 0
                    }
                    return
                }
                for token in tokens.prefix(Int(count)) {
                    handle(token, reusing: &reached)
                }
            case .exit:
                closeOwnJobs()
                finish(failingSleepersWith: nil)
                return
            }
        }
    }

    /// From now on the thread's own enqueues take the shared path, and a thread that later
    /// gets the same pthread id (ids are reused once a thread has exited) never matches.
    private func closeOwnJobs() {
        ownJobs.pointee.open = false
        loopThread.store(0, ordering: .relaxed)
    }

    /// Handles one ready descriptor.
    private func handle(_ token: UInt64, reusing buffer: inout [ClockTimer.Sleeper]) {
        if token == Self.wakeToken {
            _ = cloops_eventfd_drain(wakeDescriptor)
            return
        }
        guard let clock = EngineClock(rawValue: Int(token) - 1), let timer = registry.existingTimer(for: clock) else {
            return
        }
        // Resuming a sleeper whose task prefers this executor enqueues its job here, on this
        // thread: the loop body runs in the next drain, without a context switch.
        timer.handleReadable(reusing: &buffer)
    }

    /// Marks the thread exited, hands leftover jobs to the global executor, fails the
    /// remaining sleepers and closes every descriptor.
    private func finish(failingSleepersWith failure: LoopError?) {
        let jobs: [UnownedJob] = state.withLock { state in
            state.lifecycle = .exited(failure: failure)
            defer { state.jobs.removeAll() }
            return state.jobs
        }
        for job in jobs { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
        // After `.exited`: a timer created from now on is refused by `watch`, and one being
        // created now holds the registry's lock until it is in `all`.
        for timer in registry.all { timer.close(failingSleepersWith: failure) }
        TimerCore.close(wakeDescriptor)
        TimerCore.close(epollDescriptor)
    }
}

extension PrecisionThread {
    /// The bytes of a thread's name the kernel keeps (`TASK_COMM_LEN` less its terminator).
    static let kernelNameLength = 15

    /// `name` cut to what the kernel keeps of a thread's name (shown by `top -H`, `ps -L`,
    /// debuggers): its first 15 bytes of UTF-8, never splitting a character's encoding.
    static func kernelName(_ name: String) -> String {
        var kept = Substring.UnicodeScalarView()
        var length = 0
        for scalar in name.unicodeScalars {
            length += UTF8.width(scalar)
            if length > kernelNameLength { break }
            kept.append(scalar)
        }
        return String(kept)
    }
}

/// What the pthread function receives.
private final class ThreadContext {
    let thread: PrecisionThread
    let name: String

    init(thread: PrecisionThread, name: String) {
        self.thread = thread
        self.name = name
    }
}
