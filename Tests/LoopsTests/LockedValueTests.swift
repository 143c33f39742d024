import Foundation
import Testing

@testable import Loops

/// `LockedValue` runs on the C core's futex lock (`cloops_lock`): these check what a lock
/// must do — exclusion under contention, waking a thread that sleeps in the kernel for it, and
/// releasing when the body throws.
@Suite("LockedValue")
struct LockedValueTests {
    private struct Failure: Error {}

    @Test("threads that contend for the lock never lose an update")
    func exclusionUnderContention() async {
        let threads = 4
        let rounds = 20_000
        // A read, a pause and a write-back: without exclusion, increments are lost. Every
        // 500th round yields with the lock held, so the others find it taken and wait in
        // futex(2) rather than only racing on the compare-and-swap.
        let counter = LockedValue(0)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<threads {
                group.addTask {
                    await runOnThread {
                        for round in 0..<rounds {
                            counter.withLock { value in
                                let read = value
                                if round % 500 == 0 { sched_yield() }
                                value = read + 1
                            }
                        }
                    }
                }
            }
        }
        #expect(counter.withLock { $0 } == threads * rounds)
    }

    @Test("a thread waiting in the kernel for the lock gets it when the holder releases it")
    func waiterWokenOnRelease() async {
        let lock = LockedValue(0)
        let holding = DispatchSemaphore(value: 0)
        let released = LockedValue<Date?>(nil)
        let holder = Thread {
            lock.withLock { value in
                holding.signal()
                // Long enough for the waiter to block in FUTEX_WAIT.
                usleep(50_000)
                value = 1
                released.withLock { $0 = Date() }
            }
        }
        holder.start()
        holding.wait()
        let seen = await runOnThread { lock.withLock { $0 } }
        let acquired = Date()
        #expect(seen == 1)
        let releasedAt = released.withLock { $0 }
        #expect(releasedAt != nil)
        if let releasedAt { #expect(acquired >= releasedAt) }
    }

    @Test("a body that throws releases the lock, and its changes stay")
    func throwingBodyReleases() {
        let value = LockedValue(1)
        #expect(throws: Failure.self) {
            try value.withLock { (number: inout Int) throws(Failure) in
                number = 2
                throw Failure()
            }
        }
        #expect(value.withLock { number in
            number += 1
            return number
        } == 3)
    }
}

/// Runs `work` on a thread of its own (not the cooperative pool, which blocking would starve)
/// and returns its result.
private func runOnThread<Result: Sendable>(_ work: @escaping @Sendable () -> Result) async -> Result {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: work()) }.start()
    }
}
