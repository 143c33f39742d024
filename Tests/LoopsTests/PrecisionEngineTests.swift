import Foundation
import Testing

@testable import Loops

#if canImport(Glibc)
import Glibc
#endif

/// Real-timer tests of precision mode. Part of the serialized engine suites because they
/// check that descriptors are closed.
extension EngineTests {
    @Suite("PrecisionEngine")
    struct PrecisionEngineTests {
        /// 30 ms: the ≥ 25 ms of headroom real-timer tests keep on these machines.
        static let shortDelay: Int64 = 30_000_000

        /// A thread name unique to the test (the kernel keeps 15 characters).
        static func uniqueName() -> String { "prec-\(UInt32.random(in: 0...99_999_999))" }

        /// The names of the process's live threads.
        static func threadNames() -> [String] {
            Array(threads().values)
        }

        /// The process's live threads: name by thread id.
        static func threads() -> [String: String] {
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
            var names: [String: String] = [:]
            for task in tasks {
                names[task] = (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines)
            }
            return names
        }

        /// The names of the threads not among `before` (a snapshot of ``threads()``).
        static func namesOfThreads(startedSince before: [String: String]) -> [String] {
            threads().filter { before[$0.key] == nil }.map(\.value)
        }

        static func isOpen(_ descriptor: Int32) -> Bool { fcntl(descriptor, F_GETFD) != -1 }

        /// Opens the engine's continuous timer with one short sleep, and returns every
        /// descriptor the engine holds.
        static func descriptorsAfterOneSleep(_ engine: PrecisionEngine) async throws -> [Int32] {
            let reason = try await engine.sleep(until: engine.now(.continuous) + 1_000_000, on: .continuous, waker: nil)
            #expect(reason == .deadlineReached)
            let timer = try #require(engine.timerDescriptor(for: .continuous))
            return engine.threadDescriptors + [timer]
        }

        @Test("a loop's body runs on the engine's thread, every iteration")
        func bodyRunsOnEngineThread() async throws {
            let engine = PrecisionEngine(name: Self.uniqueName())
            defer { engine.shutdown() }
            let threads = LockedValue<[UInt]>([])
            let loop = try Loop(seconds: 0.03, count: 3, clock: .continuous.precise(on: engine)) { _ in
                threads.withLock { $0.append(UInt(pthread_self())) }
            }
            try await loop.run()
            let handle = try #require(engine.threadHandle)
            #expect(threads.withLock { $0 } == [handle, handle, handle])
            #expect(handle != UInt(pthread_self()))
            // One timerfd for the clock, however many sleeps.
            #expect(engine.openTimerDescriptorCount == 1)
        }

        @Test("sleeps wake at or after their deadline, on the engine's thread", arguments: EngineClock.allCases)
        func sleepsWakeOnTime(clock: EngineClock) async throws {
            let engine = PrecisionEngine(name: Self.uniqueName())
            defer { engine.shutdown() }
            let (reason, deadline, woke, thread) = try await Task(executorPreference: engine) {
                let deadline = engine.now(clock) + Self.shortDelay
                let reason = try await engine.sleep(until: deadline, on: clock, waker: nil)
                return (reason, deadline, engine.now(clock), UInt(pthread_self()))
            }.value
            #expect(reason == .deadlineReached)
            #expect(woke >= deadline)
            // Generous: only catches a sleep that waits for some unrelated event.
            #expect(woke - deadline < 2_000_000_000)
            #expect(thread == engine.threadHandle)
            #expect(engine.sleeperCount(on: clock) == 0)
        }

        @Test("a waker ends a precision sleep early")
        func wakerInterrupts() async throws {
            let engine = PrecisionEngine(name: Self.uniqueName())
            defer { engine.shutdown() }
            let waker = Waker()
            let sleeper = Task(executorPreference: engine) {
                try await engine.sleep(until: engine.now(.continuous) + 60_000_000_000, on: .continuous, waker: waker)
            }
            while engine.sleeperCount(on: .continuous) == 0 { try await Task.sleep(for: .milliseconds(1)) }
            waker.wake()
            #expect(try await sleeper.value == .interrupted)
        }

        @Test("jobs enqueued from other threads run, one at a time, on the engine's thread")
        func runsJobsFromOtherThreads() async throws {
            let engine = PrecisionEngine(name: Self.uniqueName())
            defer { engine.shutdown() }
            let probe = OverlapProbe()
            let threads = await withTaskGroup(of: UInt.self) { group in
                for _ in 0..<200 {
                    group.addTask(executorPreference: engine) {
                        probe.enter()
                        probe.spin()
                        // A job ends at a suspension point; the next one may start there.
                        probe.leave()
                        await Task.yield()
                        return UInt(pthread_self())
                    }
                }
                return await group.reduce(into: [UInt]()) { $0.append($1) }
            }
            // Tasks created from plain threads (no task context at all) too.
            let fromThreads = ThreadLog()
            let done = DispatchGroup()
            DispatchQueue.concurrentPerform(iterations: 20) { _ in
                done.enter()
                Task(executorPreference: engine) {
                    fromThreads.append(UInt(pthread_self()))
                    done.leave()
                }
            }
            await withCheckedContinuation { continuation in
                done.notify(queue: .global()) { continuation.resume() }
            }
            let handle = try #require(engine.threadHandle)
            #expect(threads.count == 200)
            #expect(threads.allSatisfy { $0 == handle })
            #expect(fromThreads.entries == Array(repeating: handle, count: 20))
            #expect(probe.mostAtOnce == 1)
        }

        @Test("shutdown stops the thread and closes every descriptor")
        func shutdownReleasesEverything() async throws {
            let name = Self.uniqueName()
            let engine = PrecisionEngine(name: name)
            let descriptors = try await Self.descriptorsAfterOneSleep(engine)
            #expect(descriptors.count == 3)
            #expect(descriptors.allSatisfy(Self.isOpen))
            #expect(Self.threadNames().contains(name))
            engine.shutdown()
            #expect(engine.hasStopped)
            #expect(!Self.threadNames().contains(name))
            #expect(descriptors.allSatisfy { !Self.isOpen($0) })
            engine.shutdown()  // idempotent
        }

        @Test("a thread's name longer than the kernel keeps shows as its first 15 bytes, never cut inside a character")
        func longNamesAreCut() async throws {
            #expect(PrecisionThread.kernelName("loops-precise") == "loops-precise")
            #expect(PrecisionThread.kernelName("prec-1234567890-and-more") == "prec-1234567890")
            // "é" is two bytes: at bytes 15–16 it is left out whole; at 14–15 it is kept.
            #expect(PrecisionThread.kernelName("prec-1234567890é") == "prec-1234567890")
            #expect(PrecisionThread.kernelName("prec-123456789é") == "prec-123456789")
            #expect(PrecisionThread.kernelName("prec-12345678é9") == "prec-12345678é")
            #expect(PrecisionThread.kernelName("") == "")

            let name = Self.uniqueName() + "-with-a-long-tail"
            let engine = PrecisionEngine(name: name)
            defer { engine.shutdown() }
            _ = try await Self.descriptorsAfterOneSleep(engine)
            #expect(Self.threadNames().contains(String(name.prefix(15))))
        }

        @Test("the engines' threads go by their documented names")
        func defaultThreadNames() async throws {
            // By thread id: an engine of an earlier test may still be ending its thread.
            var before = Self.threads()
            let system = SystemEngine()
            _ = try await system.sleep(until: system.now(.continuous) + 1_000_000, on: .continuous, waker: nil)
            #expect(Self.namesOfThreads(startedSince: before).contains("loops-engine"))
            before = Self.threads()
            let precise = PrecisionEngine()
            defer { precise.shutdown() }
            _ = try await Self.descriptorsAfterOneSleep(precise)
            #expect(Self.namesOfThreads(startedSince: before).contains("loops-precise"))
            withExtendedLifetime(system) {}
        }

        @Test("releasing the last reference stops the thread and closes every descriptor")
        func releaseStopsThread() async throws {
            let name = Self.uniqueName()
            weak var weakEngine: PrecisionEngine?
            var descriptors: [Int32] = []
            do {
                let engine = PrecisionEngine(name: name)
                weakEngine = engine
                let loop = try Loop(seconds: 0.03, count: 2, clock: .continuous.precise(on: engine)) { _ in }
                try await loop.run()
                descriptors = try await Self.descriptorsAfterOneSleep(engine)
                #expect(Self.threadNames().contains(name))
            }
            #expect(weakEngine == nil)
            #expect(!Self.threadNames().contains(name))
            #expect(descriptors.count == 3)
            #expect(descriptors.allSatisfy { !Self.isOpen($0) })
        }

        @Test("a sleeper still waiting at shutdown fails with a LoopError; later sleeps fail too")
        func shutdownFailsSleepers() async throws {
            let engine = PrecisionEngine(name: Self.uniqueName())
            let sleeper = Task {
                try await engine.sleep(until: engine.now(.continuous) + 60_000_000_000, on: .continuous, waker: nil)
            }
            while engine.sleeperCount(on: .continuous) == 0 { try await Task.sleep(for: .milliseconds(1)) }
            engine.shutdown()
            await #expect(throws: LoopError.self) { try await sleeper.value }
            await #expect(throws: LoopError.self) {
                try await engine.sleep(until: engine.now(.suspending) + Self.shortDelay, on: .suspending, waker: nil)
            }
        }

        @Test("work that prefers a shut-down engine still runs, on the global executor")
        func workAfterShutdownRuns() async throws {
            let engine = PrecisionEngine(name: Self.uniqueName())
            let handle = try #require(engine.threadHandle)
            engine.shutdown()
            let thread = await Task(executorPreference: engine) { UInt(pthread_self()) }.value
            #expect(thread != handle)
        }

        @Test("LoopClock.precise: the shared engine, the clock kept; Loop prefers its executor")
        func clockSelection() throws {
            #expect(LoopClock.precise.engine === PrecisionEngine.shared)
            #expect(LoopClock.precise.intervalClock == .continuous)
            #expect(LoopClock.suspending.precise.intervalClock == .suspending)
            #expect(LoopClock.suspending.precise.engine === PrecisionEngine.shared)
            let engine = PrecisionEngine(name: Self.uniqueName())
            defer { engine.shutdown() }
            #expect(LoopClock.continuous.precise(on: engine).engine === engine)
            let precise = try Loop(seconds: 1, clock: .continuous.precise(on: engine)) { _ in }
            #expect(precise.executor === engine)
            let standard = try Loop(seconds: 1) { _ in }
            #expect(standard.executor == nil)
        }
    }
}

/// Thread handles recorded from escaping closures.
final class ThreadLog: Sendable {
    private let handles = LockedValue<[UInt]>([])
    func append(_ handle: UInt) { handles.withLock { $0.append(handle) } }
    var entries: [UInt] { handles.withLock { $0 } }
}
