import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Loops
import Testing

/// Many loops on real timers while many tasks call every lifecycle and configuration method at
/// random (DESIGN §7: no races, no leaks). After each cycle every accepted run has ended through
/// `afterLoop` exactly once, hooks and bodies of one loop never overlapped, every loop reports a
/// state consistent with how its last run ended and is deallocated once let go, no fd leaked,
/// and RSS is back within 5 % of its baseline.
///
/// `LOOPS_STRESS_LOOPS`, `LOOPS_STRESS_SECONDS` scale it (defaults: 10,000 loops, 1 s per cycle);
/// `LOOPS_STRESS_CHECK_RSS=0` leaves out the RSS check (the sanitizer passes).
@Suite("Stress: lifecycle calls from many tasks on many loops")
struct LoopStressTests {
    struct StressError: Error {}

    /// What one loop went through, as its hooks and the callers saw it.
    final class Probe: Sendable {
        struct Counts {
            var active = 0
            var overlaps = 0
            var bodies = 0
            var admissions = 0
            var afterLoops = 0
            var onErrors = 0
            var failuresSeen = 0
            /// `failed` and `currentLoop` as the last `afterLoop` saw them.
            var lastFailed = false
            var lastCurrentLoop = 0
        }

        let counts = LockedValue(Counts())

        func enter() {
            counts.withLock {
                $0.active += 1
                if $0.active > 1 { $0.overlaps += 1 }
            }
        }

        func leave() { counts.withLock { $0.active -= 1 } }
    }

    /// Holds a loop weakly, to see that it is deallocated.
    final class WeakLoop: @unchecked Sendable {
        weak var loop: Loop?
        init(_ loop: Loop) { self.loop = loop }
    }

    static let loopCount = ProcessInfo.processInfo.environment["LOOPS_STRESS_LOOPS"].flatMap(Int.init) ?? 10_000
    static let secondsPerCycle = ProcessInfo.processInfo.environment["LOOPS_STRESS_SECONDS"].flatMap(Double.init) ?? 1

    /// RSS measures the loops only in a process set up for it (`make test` does):
    /// - Swift Testing keeps a backtrace of every error thrown while a test runs, for the whole
    ///   run, unless `SWT_SWIFT_ERROR_BACKTRACING_ENABLED=0`; the bodies here throw thousands.
    /// - glibc gives contending threads arenas of their own and lets them hop between arenas;
    ///   freed memory then stays resident in arenas nobody allocates from any more (heaptrack
    ///   shows the live heap flat while RSS climbs 2–9 % per cycle on a loaded machine).
    ///   `MALLOC_ARENA_MAX=1` keeps one arena, so RSS follows the live heap.
    /// - Under a sanitizer RSS measures the sanitizer (AddressSanitizer's quarantine of freed
    ///   blocks, ThreadSanitizer's shadow memory), so the sanitizer passes set
    ///   `LOOPS_STRESS_CHECK_RSS=0`; fds, overlaps and deallocation are still checked there.
    static let measuresResidentMemory =
        ProcessInfo.processInfo.environment["SWT_SWIFT_ERROR_BACKTRACING_ENABLED"] == "0"
            && ProcessInfo.processInfo.environment["MALLOC_ARENA_MAX"] == "1"
            && ProcessInfo.processInfo.environment["LOOPS_STRESS_CHECK_RSS"] != "0"

    @Test("10,000 loops, 64 tasks calling every method at random, three cycles")
    func stress() async throws {
        // Two warm-up cycles first: the engine's timerfds and thread, the cooperative pool's
        // threads and the allocator's arenas and caches come to exist once per process (after
        // one cycle RSS can still step up by a few percent when the pool adds a thread).
        try await runCycle(0)
        try await runCycle(1)
        let fdsBaseline = openFileDescriptors()
        let residentBaseline = residentBytes()
        if !Self.measuresResidentMemory {
            print("LoopStressTests: RSS not checked (needs SWT_SWIFT_ERROR_BACKTRACING_ENABLED=0 and MALLOC_ARENA_MAX=1, as `make test` sets, and no LOOPS_STRESS_CHECK_RSS=0)")
        }
        for cycle in 2...4 {
            try await runCycle(cycle)
            let fds = openFileDescriptors()
            #expect(fds <= fdsBaseline, "file descriptors leaked: \(fdsBaseline) before, \(fds) after cycle \(cycle)")
            if Self.measuresResidentMemory {
                let resident = residentBytes()
                #expect(
                    Double(resident) <= Double(residentBaseline) * 1.05,
                    "RSS after cycle \(cycle): \(resident / 1024) KiB, baseline \(residentBaseline / 1024) KiB"
                )
            }
        }
    }

    private func makeLoops(_ count: Int) throws -> ([Loop], [Probe]) {
        var loops: [Loop] = []
        var probes: [Probe] = []
        for index in 0..<count {
            let probe = Probe()
            let loop = try Loop(seconds: Double(5 + index % 46) / 1000) { _ in
                probe.enter()
                defer { probe.leave() }
                let throwsNow = probe.counts.withLock { counts -> Bool in
                    counts.bodies += 1
                    return counts.bodies % 13 == 0
                }
                await Task.yield()
                if throwsNow { throw StressError() }
            }
            loop.setBackoffJitter { _ in 0.001 }
            loop.beforeLoop { _ in
                probe.enter()
                defer { probe.leave() }
                await Task.yield()
            }
            loop.afterLoop { loop in
                probe.enter()
                defer { probe.leave() }
                let failed = loop.failed
                let currentLoop = loop.currentLoop
                probe.counts.withLock {
                    $0.afterLoops += 1
                    $0.lastFailed = failed
                    $0.lastCurrentLoop = currentLoop
                }
                await Task.yield()
            }
            loop.onError { loop, error in
                probe.enter()
                defer { probe.leave() }
                let failed = loop.failed
                probe.counts.withLock {
                    $0.onErrors += 1
                    if failed { $0.failuresSeen += 1 }
                }
            }
            loops.append(loop)
            probes.append(probe)
        }
        return (loops, probes)
    }

    /// Makes the loops, runs one cycle of random calls on them, checks them, and lets them go.
    private func runCycle(_ cycle: Int) async throws {
        let weakLoops = try await runCycle(cycle, loops: makeLoops(Self.loopCount))
        let alive = weakLoops.filter { $0.loop != nil }.count
        #expect(alive == 0, "cycle \(cycle): \(alive) loops still allocated after the cycle let them go")
    }

    private func runCycle(_ cycle: Int, loops built: ([Loop], [Probe])) async throws -> [WeakLoop] {
        let (loops, probes) = built
        for (loop, probe) in zip(loops, probes) where (try? loop.start()) != nil {
            probe.counts.withLock { $0.admissions += 1 }
        }
        let deadline = ContinuousClock.now + .seconds(Self.secondsPerCycle)
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<64 {
                group.addTask {
                    var random = SeededRandom(seed: UInt64(cycle * 64 + worker) &* 0x9E37_79B9 &+ 1)
                    while ContinuousClock.now < deadline {
                        let index = random.next(below: loops.count)
                        let loop = loops[index]
                        let probe = probes[index]
                        switch random.next(below: 8) {
                        case 0:
                            if (try? loop.start()) != nil { probe.counts.withLock { $0.admissions += 1 } }
                        case 1: loop.stop()
                        case 2: loop.cancel()
                        case 3:
                            loop.restart()
                            probe.counts.withLock { $0.admissions += 1 }
                        case 4: try? loop.changeInterval(seconds: Double(5 + random.next(below: 46)) / 1000)
                        case 5: loop.addErrorType(StressError.self)
                        case 6: loop.removeErrorType(StressError.self)
                        default: _ = (loop.isRunning, loop.nextIteration, loop.currentLoop, loop.failed)
                        }
                        if random.next(below: 16) == 0 { await Task.yield() }
                    }
                }
            }
        }
        for loop in loops { loop.cancel() }
        let settleBy = ContinuousClock.now + .seconds(60)
        while loops.contains(where: \.isRunning), ContinuousClock.now < settleBy {
            try await Task.sleep(for: .milliseconds(20))
        }
        let stillRunning = loops.indices.filter { loops[$0].isRunning }
        #expect(stillRunning.isEmpty, "cycle \(cycle): loops still running after cancel(): \(stillRunning.prefix(10))")
        for loop in loops { await loop.task?.value }

        var mismatches: [String] = []
        for (index, loop) in loops.enumerated() {
            let counts = probes[index].counts.withLock { $0 }
            if counts.overlaps > 0 { mismatches.append("loop \(index): hooks or bodies overlapped \(counts.overlaps) times") }
            if counts.afterLoops != counts.admissions {
                mismatches.append("loop \(index): \(counts.admissions) runs accepted, afterLoop ran \(counts.afterLoops) times")
            }
            if counts.failuresSeen != counts.onErrors {
                mismatches.append("loop \(index): onError ran with failed false")
            }
            if counts.admissions > 0 {
                if loop.failed != counts.lastFailed {
                    mismatches.append("loop \(index): failed is \(loop.failed), its last run ended with \(counts.lastFailed)")
                }
                if loop.currentLoop != counts.lastCurrentLoop {
                    mismatches.append("loop \(index): currentLoop is \(loop.currentLoop), its last afterLoop saw \(counts.lastCurrentLoop)")
                }
            }
            if loop.nextIteration != nil { mismatches.append("loop \(index): nextIteration set while idle") }
            if loop.isBeingCancelled { mismatches.append("loop \(index): isBeingCancelled while idle") }
        }
        #expect(mismatches.isEmpty, "cycle \(cycle): \(mismatches.count) inconsistencies: \(mismatches.prefix(10))")
        let totalBodies = probes.reduce(0) { $0 + $1.counts.withLock { $0.bodies } }
        #expect(totalBodies > loops.count, "cycle \(cycle): the calls must really have run loops (\(totalBodies) bodies)")
        return loops.map(WeakLoop.init)
    }

    private func openFileDescriptors() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }

    /// RSS after glibc's `malloc_trim(0)` has returned free memory to the system, so that
    /// fragmentation of the allocator's arenas is not mistaken for memory the loops hold.
    private func residentBytes() -> Int {
        typealias MallocTrim = @convention(c) (Int) -> Int32
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") {
            _ = unsafeBitCast(symbol, to: MallocTrim.self)(0)
        }
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
