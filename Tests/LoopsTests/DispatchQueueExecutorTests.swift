import Synchronization
import Dispatch
import Testing

@testable import Loops

@Suite("DispatchQueueExecutor")
struct DispatchQueueExecutorTests {
    /// A queue that can be recognised from inside a job.
    static func markedQueue(_ marker: Int) -> (DispatchQueue, DispatchSpecificKey<Int>) {
        let key = DispatchSpecificKey<Int>()
        let queue = DispatchQueue(label: "swift-loops.tests.queue-\(marker)")
        queue.setSpecific(key: key, value: marker)
        return (queue, key)
    }

    @Test("a loop's hooks and every iteration of its body run on the queue")
    func loopBodyRunsOnQueue() async throws {
        let (queue, key) = Self.markedQueue(7)
        let seen = LockedValue<[Int?]>([])
        let loop = try Loop(seconds: 0.03, count: 3, executor: DispatchQueueExecutor(queue)) { _ in
            seen.withLock { $0.append(DispatchQueue.getSpecific(key: key)) }
        }
        loop.beforeLoop { _ in seen.withLock { $0.append(DispatchQueue.getSpecific(key: key)) } }
        loop.afterLoop { _ in seen.withLock { $0.append(DispatchQueue.getSpecific(key: key)) } }
        try await loop.run()
        #expect(seen.withLock { $0 } == [7, 7, 7, 7, 7])
        // The test's own task is not on the queue: the marker is not visible everywhere.
        #expect(DispatchQueue.getSpecific(key: key) == nil)
    }

    @Test("an explicit executor wins over precision mode's thread")
    func explicitExecutorWinsOverPrecision() async throws {
        let (queue, key) = Self.markedQueue(11)
        let engine = PrecisionEngine(name: "dqe-\(UInt16.random(in: 0...9999))")
        defer { engine.shutdown() }
        let seen = LockedValue<[Int?]>([])
        let loop = try Loop(
            seconds: 0.03,
            count: 2,
            clock: .continuous.precise(on: engine),
            executor: DispatchQueueExecutor(queue)
        ) { _ in
            seen.withLock { $0.append(DispatchQueue.getSpecific(key: key)) }
        }
        try await loop.run()
        #expect(seen.withLock { $0 } == [11, 11])
    }

    @Test("a body isolated to an actor runs on the actor, not on the loop's executor")
    func actorIsolatedBodyRunsOnItsActor() async throws {
        let (queue, key) = Self.markedQueue(13)
        let seen = LockedValue<[Int?]>([])
        let body: @QueueActor @Sendable (Loop) async -> Void = { _ in
            seen.withLock { $0.append(DispatchQueue.getSpecific(key: QueueActor.key)) }
            seen.withLock { $0.append(DispatchQueue.getSpecific(key: key)) }
        }
        let loop = try Loop(seconds: 0.03, count: 2, executor: DispatchQueueExecutor(queue), body)
        try await loop.run()
        // On the actor's queue, never on the loop's.
        #expect(seen.withLock { $0 } == [QueueActor.marker, nil, QueueActor.marker, nil])
    }

    @Test("a task that prefers the executor is back on the queue after each suspension")
    func resumesOnQueue() async throws {
        let (queue, key) = Self.markedQueue(3)
        let markers = try await Task(executorPreference: DispatchQueueExecutor(queue)) {
            var markers = [DispatchQueue.getSpecific(key: key)]
            try await Task.sleep(for: .milliseconds(5))
            markers.append(DispatchQueue.getSpecific(key: key))
            await Task.yield()
            markers.append(DispatchQueue.getSpecific(key: key))
            return markers
        }.value
        #expect(markers == [3, 3, 3])
    }

    @Test("on a serial queue, jobs never overlap")
    func serialQueueRunsOneJobAtATime() async {
        let (queue, _) = Self.markedQueue(5)
        let executor = DispatchQueueExecutor(queue)
        let probe = OverlapProbe()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<100 {
                group.addTask(executorPreference: executor) {
                    probe.enter()
                    probe.spin()
                    probe.leave()
                }
            }
        }
        #expect(probe.mostAtOnce == 1)
        #expect(executor.queue === queue)
    }
}

/// Counts jobs running at the same time (shared by reference with escaping closures).
final class OverlapProbe: Sendable {
    private let inside = Atomic<Int>(0)
    private let most = Atomic<Int>(0)

    func enter() {
        let now = inside.add(1, ordering: .sequentiallyConsistent).newValue
        most.max(now, ordering: .sequentiallyConsistent)
    }

    func leave() { inside.subtract(1, ordering: .sequentiallyConsistent) }

    /// Stays busy for 50 µs, long enough for a second thread to be seen inside.
    func spin() {
        let end = ContinuousClock.now + .microseconds(50)
        while ContinuousClock.now < end {}
    }

    /// The most jobs seen inside at once.
    var mostAtOnce: Int { most.load(ordering: .sequentiallyConsistent) }
}

/// A global actor whose jobs run on a marked serial queue of its own.
@globalActor
actor QueueActor {
    static let shared = QueueActor()
    static let marker = 17
    static let key = DispatchSpecificKey<Int>()
    private static let executor = QueueSerialExecutor()

    nonisolated var unownedExecutor: UnownedSerialExecutor {
        Self.executor.asUnownedSerialExecutor()
    }

    final class QueueSerialExecutor: SerialExecutor {
        private let queue: DispatchQueue

        init() {
            queue = DispatchQueue(label: "swift-loops.tests.queue-actor")
            queue.setSpecific(key: QueueActor.key, value: QueueActor.marker)
        }

        func enqueue(_ job: consuming ExecutorJob) {
            let job = UnownedJob(job)
            queue.async { job.runSynchronously(on: self.asUnownedSerialExecutor()) }
        }
    }
}
