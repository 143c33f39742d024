import Testing

@testable import Loops

/// The registry both kernel wait paths share: one timer per clock, created once, never visible
/// before its fd is watched.
extension EngineTests {
    @Suite("TimerRegistry")
    struct TimerRegistryTests {
        @Test("a clock's timer is created and watched once, whoever asks")
        func createdOnce() throws {
            let registry = TimerRegistry()
            var watched: [EngineClock] = []
            let first = try registry.timer(for: .suspending) { watched.append($0.clock) }
            let second = try registry.timer(for: .suspending) { watched.append($0.clock) }
            #expect(first === second)
            #expect(watched == [.suspending])
            #expect(registry.openDescriptorCount == 1)
            #expect(registry.descriptor(for: .suspending) == first.descriptor)
            #expect(registry.descriptor(for: .realtime) == nil)
            for timer in registry.all { timer.close() }
        }

        @Test("a timer whose fd cannot be watched is closed and not kept; the next use tries again")
        func failedWatch() async throws {
            let registry = TimerRegistry()
            var rejected: ClockTimer?
            #expect(throws: LoopError(.systemTimer, "refused")) {
                try registry.timer(for: .continuous) { (timer: ClockTimer) throws(LoopError) in
                    rejected = timer
                    throw LoopError(.systemTimer, "refused")
                }
            }
            #expect(registry.openDescriptorCount == 0)
            #expect(registry.all.isEmpty)
            // Closed: a sleep on it fails at once instead of waiting on a descriptor nobody reads.
            let timer = try #require(rejected)
            await #expect(throws: LoopError.self) {
                _ = try await timer.sleep(until: timer.now + 60_000_000_000, waker: nil)
            }
            let accepted = try registry.timer(for: .continuous) { _ in }
            #expect(accepted !== timer)
            #expect(registry.openDescriptorCount == 1)
            accepted.close()
        }

        @Test("a deadline already reached routes nowhere, without opening a timer")
        func reachedDeadline() throws {
            let registry = TimerRegistry()
            let route = registry.route(until: TimerCore.now(.continuous) - 1, on: .continuous)
            guard case .reached = route else {
                Issue.record("expected .reached, got \(route)")
                return
            }
            #expect(registry.openDescriptorCount == 0)
        }

        @Test("a deadline still ahead routes to the clock's one timer")
        func futureDeadline() throws {
            let registry = TimerRegistry()
            let deadline = TimerCore.now(.continuous) + 60_000_000_000
            // No timer yet: the caller creates it.
            if let route = registry.route(until: deadline, on: .continuous) {
                Issue.record("expected no route before the timer exists, got \(route)")
            }
            let created = try registry.timer(for: .continuous) { _ in }
            guard case .timer(let timer) = registry.route(until: deadline, on: .continuous) else {
                Issue.record("expected .timer")
                return
            }
            #expect(timer === created)
            #expect(registry.existingTimer(for: .continuous) === timer)
            #expect(registry.openDescriptorCount == 1)
            timer.close()
        }
    }
}
