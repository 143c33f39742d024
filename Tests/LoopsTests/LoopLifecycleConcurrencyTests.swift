import Foundation
import Loops
import Testing

/// Lifecycle calls from many tasks at once, on real timers: a loop's runs never overlap (a run
/// accepted after `cancel()` begins once the cancelled run's `afterLoop` has returned), and
/// every loop settles, not running, after a final `cancel()`.
@Suite("Lifecycle calls from many tasks at once")
struct LoopLifecycleConcurrencyTests {
    /// Counts the hooks and bodies of one loop in progress; more than one at a time is an overlap.
    final class OverlapProbe: Sendable {
        private let state = LockedValue((active: 0, overlaps: 0, entries: 0))

        func enter() {
            state.withLock {
                $0.active += 1
                $0.entries += 1
                if $0.active > 1 { $0.overlaps += 1 }
            }
        }

        func leave() {
            state.withLock { $0.active -= 1 }
        }

        var overlaps: Int { state.withLock { $0.overlaps } }
        var entries: Int { state.withLock { $0.entries } }
    }

    @Test("start, stop, cancel, restart and changeInterval at random: no overlap, every loop settles")
    func randomLifecycleCalls() async throws {
        let loopCount = 400
        var probes: [OverlapProbe] = []
        var loops: [Loop] = []
        for index in 0..<loopCount {
            let probe = OverlapProbe()
            let loop = try Loop(seconds: Double(1 + index % 8) / 1000) { _ in
                probe.enter()
                defer { probe.leave() }
                await Task.yield()
            }
            loop.beforeLoop { _ in
                probe.enter()
                defer { probe.leave() }
                await Task.yield()
            }
            loop.afterLoop { _ in
                probe.enter()
                defer { probe.leave() }
                await Task.yield()
            }
            probes.append(probe)
            loops.append(loop)
        }
        let deadline = ContinuousClock.now + .milliseconds(1500)
        let shared = loops
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<32 {
                group.addTask {
                    var generator = SeededRandom(seed: UInt64(worker) &* 0x9E37_79B9 &+ 17)
                    while ContinuousClock.now < deadline {
                        let loop = shared[generator.next(below: shared.count)]
                        switch generator.next(below: 6) {
                        case 0: _ = try? loop.start()
                        case 1: loop.stop()
                        case 2: loop.cancel()
                        case 3, 4: loop.restart()
                        default: try? loop.changeInterval(seconds: Double(1 + generator.next(below: 8)) / 1000)
                        }
                        if generator.next(below: 8) == 0 { await Task.yield() }
                    }
                }
            }
        }
        for loop in loops { loop.cancel() }
        // Every run must end; give the machine ample time, and stop waiting as soon as all have.
        let settleBy = ContinuousClock.now + .seconds(20)
        while loops.contains(where: \.isRunning), ContinuousClock.now < settleBy {
            try await Task.sleep(for: .milliseconds(20))
        }
        let stillRunning = loops.indices.filter { loops[$0].isRunning }
        #expect(stillRunning.isEmpty, "loops still running after cancel(): \(stillRunning.prefix(10))")
        for loop in loops { await loop.task?.value }
        let overlapping = probes.indices.filter { probes[$0].overlaps > 0 }
        #expect(overlapping.isEmpty, "hooks or bodies overlapped in loops \(overlapping.prefix(10))")
        #expect(probes.reduce(0) { $0 + $1.entries } > loopCount, "the calls must really have run loops")
        // A settled loop can be started again.
        for loop in loops.prefix(20) {
            #expect(throws: Never.self) { try loop.start() }
            loop.cancel()
        }
        for loop in loops.prefix(20) { await loop.task?.value }
        #expect(loops.prefix(20).allSatisfy { !$0.isRunning })
    }
}
