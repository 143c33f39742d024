import Foundation
import Loops
import LoopsTestKit
import Testing

@Suite("Lifecycle: start, stop, cancel, restart, run, count")
struct LoopLifecycleTests {
    /// A 5 s loop whose body takes 2 s of virtual time, logging hooks and state.
    private func makeLoop(
        _ clock: VirtualClock,
        _ log: EventLog,
        count: Int? = nil,
        bodyTime: Duration = .seconds(2)
    ) throws -> Loop {
        let loop = try Loop(seconds: 5, count: count, clock: clock.loopClock) { loop in
            log.record("body\(loop.currentLoop)")
            try await clock.sleep(for: bodyTime)
            log.record("done\(loop.currentLoop)")
        }
        loop.beforeLoop { loop in log.record("before running=\(loop.isRunning)") }
        loop.afterLoop { loop in
            log.record("after cancelled=\(loop.isBeingCancelled) failed=\(loop.failed) current=\(loop.currentLoop) running=\(loop.isRunning)")
        }
        return loop
    }

    @Test("count: afterLoop runs right after the last counted body, with currentLoop == count")
    func countEndsRightAfterLastBody() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try makeLoop(clock, log, count: 3)
        #expect(loop.task == nil)
        let task = try loop.start()
        #expect(loop.task == task)
        #expect(loop.isRunning)
        await clock.advance(by: .seconds(60))
        #expect(log.events == [
            "before running=true@0",
            "body0@0", "done0@2",
            "body1@5", "done1@7",
            "body2@10", "done2@12",
            "after cancelled=false failed=false current=3 running=true@12",
        ])
        #expect(loop.isRunning == false)
        #expect(loop.currentLoop == 3)
        await task.value
    }

    @Test("stop() during the sleep exits at once, with no further body")
    func stopDuringSleep() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try makeLoop(clock, log)
        try loop.start()
        await clock.advance(by: .seconds(3))
        loop.stop()
        await clock.settle()
        #expect(log.events == [
            "before running=true@0", "body0@0", "done0@2",
            "after cancelled=false failed=false current=1 running=true@3",
        ])
        #expect(loop.isRunning == false)
    }

    @Test("stop() during the body lets it finish, then exits without a trailing sleep")
    func stopDuringBody() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try makeLoop(clock, log)
        try loop.start()
        await clock.advance(by: .seconds(6))  // the second body runs from 5 to 7
        loop.stop()
        await clock.advance(by: .seconds(1))
        #expect(log.events.suffix(3) == [
            "body1@5", "done1@7",
            "after cancelled=false failed=false current=2 running=true@7",
        ])
        #expect(loop.isRunning == false)
    }

    @Test("stop() in beforeLoop: no iteration, afterLoop once")
    func stopInBeforeLoop() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try makeLoop(clock, log)
        loop.beforeLoop { loop in
            log.record("before")
            loop.stop()
        }
        try loop.start()
        await clock.advance(by: .seconds(20))
        #expect(log.events == ["before@0", "after cancelled=false failed=false current=0 running=true@0"])
    }

    @Test("stop() and cancel() on a loop that is not running do nothing")
    func stopAndCancelWhenIdle() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try makeLoop(clock, log, count: 1)
        loop.stop()
        loop.cancel()
        #expect(loop.isRunning == false)
        try loop.start()  // an earlier stop() must not leak into this run
        await clock.advance(by: .seconds(10))
        #expect(log.count(of: "body0") == 1)
        loop.stop()
        loop.cancel()
        #expect(log.events.last == "after cancelled=false failed=false current=1 running=true@2")
    }

    @Test("cancel() during the body: afterLoop sees isBeingCancelled, no onError, not failed, not counted")
    func cancelDuringBody() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try makeLoop(clock, log)
        loop.onError { _, error in log.record("onError \(error)") }
        try loop.start()
        await clock.advance(by: .seconds(6))
        loop.cancel()
        await clock.settle()
        #expect(log.events == [
            "before running=true@0", "body0@0", "done0@2", "body1@5",
            "after cancelled=true failed=false current=1 running=true@6",
        ])
        #expect(loop.failed == false)
        #expect(loop.isBeingCancelled == false)
        #expect(loop.isRunning == false)
    }

    @Test("cancel() during the sleep")
    func cancelDuringSleep() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try makeLoop(clock, log)
        try loop.start()
        await clock.advance(by: .seconds(3))
        loop.cancel()
        await clock.settle()
        #expect(log.events.last == "after cancelled=true failed=false current=1 running=true@3")
        await clock.advance(by: .seconds(20))
        #expect(log.count(of: "body1") == 0)
    }

    @Test("cancel() during beforeLoop: no iteration, afterLoop once with isBeingCancelled")
    func cancelDuringBeforeLoop() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try makeLoop(clock, log)
        loop.beforeLoop { _ in
            log.record("before")
            try await clock.sleep(for: .seconds(10))  // waiting for the service to be ready
            log.record("ready")
        }
        try loop.start()
        await clock.advance(by: .seconds(4))
        loop.cancel()
        await clock.settle()
        #expect(log.events == ["before@0", "after cancelled=true failed=false current=0 running=true@4"])
    }

    @Test("afterLoop is shielded from the cancellation: it can still await to flush a batch")
    func afterLoopShieldedFromCancellation() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 10, clock: clock.loopClock) { _ in log.record("body") }
        loop.afterLoop { loop in
            log.record("flush start cancelled=\(loop.isBeingCancelled) taskCancelled=\(Task.isCancelled)")
            try await clock.sleep(for: .seconds(1))
            log.record("flush done")
        }
        try loop.start()
        await clock.advance(by: .seconds(3))
        loop.cancel()
        await clock.advance(by: .seconds(2))
        #expect(log.events == ["body@0", "flush start cancelled=true taskCancelled=false@3", "flush done@4"])
        #expect(loop.isRunning == false)
    }

    @Test("start() while running throws alreadyRunning")
    func startWhileRunningThrows() async throws {
        let clock = VirtualClock()
        let loop = try Loop(seconds: 1, clock: clock.loopClock) { _ in }
        try loop.start()
        let error = #expect(throws: LoopError.self) { try loop.start() }
        #expect(error?.code == .alreadyRunning)
        await #expect(throws: LoopError.self) { try await loop.run() }
        loop.cancel()
        await clock.settle()
    }

    @Test("start() after cancel() is accepted and begins once the cancelled run has finished")
    func startAfterCancel() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 10, clock: clock.loopClock) { loop in log.record("body\(loop.currentLoop)") }
        loop.beforeLoop { _ in log.record("before") }
        loop.afterLoop { loop in
            log.record("after cancelled=\(loop.isBeingCancelled)")
            try await clock.sleep(for: .seconds(2))  // a slow flush: the next run must wait for it
            log.record("after done")
        }
        let first = try loop.start()
        await clock.advance(by: .seconds(15))
        loop.cancel()
        let second = try loop.start()
        #expect(second != first)
        #expect(loop.task == second)
        #expect(loop.isRunning)
        await clock.advance(by: .seconds(5))
        #expect(log.events == [
            "before@0", "body0@0", "body1@10",
            "after cancelled=true@15", "after done@17",
            "before@17", "body0@17",
        ])
        #expect(loop.currentLoop == 1)
        loop.cancel()
        await clock.advance(by: .seconds(5))
    }

    @Test("restart() on a running loop cancels it and starts again; on an idle loop it starts it")
    func restart() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try makeLoop(clock, log)
        loop.restart()
        #expect(loop.isRunning)
        await clock.advance(by: .seconds(6))
        loop.restart()
        await clock.advance(by: .seconds(1))
        #expect(log.events == [
            "before running=true@0", "body0@0", "done0@2", "body1@5",
            "after cancelled=true failed=false current=1 running=true@6",
            "before running=true@6", "body0@6",
        ])
        loop.cancel()
        await clock.settle()
        #expect(loop.isRunning == false)
    }

    @Test("if afterLoop throws, the state is still reset and the loop can start again")
    func afterLoopThrowing() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 1, count: 2, clock: clock.loopClock) { _ in log.record("body") }
        loop.afterLoop { _ in
            log.record("after")
            throw UnhandledTestError()
        }
        try loop.start()
        await clock.advance(by: .seconds(5))
        #expect(loop.isRunning == false)
        #expect(loop.failed == false)
        try loop.start()
        await clock.advance(by: .seconds(5))
        #expect(log.events == ["body@0", "body@1", "after@1", "body@5", "body@6", "after@6"])
    }

    @Test("run() returns when the loop ends by count or stop()")
    func runReturns() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 5, count: 2, clock: clock.loopClock) { _ in log.record("body") }
        let runner = Task { try await loop.run() }
        await waitUntilRunning(loop)
        await clock.advance(by: .seconds(10))
        try await runner.value
        #expect(log.events == ["body@0", "body@5"])
        #expect(loop.task == nil)  // run() does not set `task`

        let stopped = try Loop(seconds: 5, clock: clock.loopClock) { _ in }
        let stoppedRunner = Task { try await stopped.run() }
        await waitUntilRunning(stopped)
        await clock.advance(by: .seconds(7))
        stopped.stop()
        try await stoppedRunner.value
    }

    @Test("run() throws CancellationError after afterLoop when the calling task is cancelled")
    func runCancelledByCaller() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 5, clock: clock.loopClock) { _ in log.record("body") }
        loop.afterLoop { loop in log.record("after cancelled=\(loop.isBeingCancelled)") }
        let runner = Task { try await loop.run() }
        await waitUntilRunning(loop)
        await clock.advance(by: .seconds(7))
        runner.cancel()
        await #expect(throws: CancellationError.self) { try await runner.value }
        #expect(log.events == ["body@0", "body@5", "after cancelled=true@7"])
        #expect(loop.isRunning == false)
        #expect(loop.failed == false)
    }

    @Test("cancel() ends a loop driven by run(): run() throws CancellationError after afterLoop")
    func cancelEndsRun() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 5, clock: clock.loopClock) { _ in log.record("body") }
        loop.afterLoop { loop in log.record("after cancelled=\(loop.isBeingCancelled)") }
        let runner = Task { try await loop.run() }
        await waitUntilRunning(loop)
        await clock.advance(by: .seconds(6))
        loop.cancel()
        await #expect(throws: CancellationError.self) { try await runner.value }
        #expect(log.events == ["body@0", "body@5", "after cancelled=true@6"])
        #expect(loop.isRunning == false)
    }

    @Test("restart() on a loop driven by run(): run() throws CancellationError and a started run takes over")
    func restartDuringRun() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 5, clock: clock.loopClock) { loop in log.record("body\(loop.currentLoop)") }
        let runner = Task { try await loop.run() }
        await waitUntilRunning(loop)
        await clock.advance(by: .seconds(1))
        loop.restart()
        await #expect(throws: CancellationError.self) { try await runner.value }
        await clock.advance(by: .seconds(5))
        #expect(log.events == ["body0@0", "body0@1", "body1@6"])
        #expect(loop.task != nil)
        loop.cancel()
        await clock.settle()
    }

    @Test("run() rethrows an unhandled body error after onError and afterLoop")
    func runRethrows() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 5, clock: clock.loopClock) { loop in
            if loop.currentLoop == 1 { throw UnhandledTestError() }
        }
        loop.onError { loop, _ in log.record("onError failed=\(loop.failed)") }
        loop.afterLoop { loop in log.record("after failed=\(loop.failed) current=\(loop.currentLoop)") }
        let runner = Task { try await loop.run() }
        await waitUntilRunning(loop)
        await clock.advance(by: .seconds(6))
        await #expect(throws: UnhandledTestError.self) { try await runner.value }
        #expect(log.events == ["onError failed=true@5", "after failed=true current=1@5"])
        #expect(loop.failed)
    }

    @Test("callAsFunction runs the body once, without hooks, onError or failed")
    func callAsFunction() async throws {
        let clock = VirtualClock()
        let log = EventLog(clock)
        let loop = try Loop(seconds: 5, clock: clock.loopClock) { _ in
            log.record("body")
            throw UnhandledTestError()
        }
        loop.beforeLoop { _ in log.record("before") }
        loop.afterLoop { _ in log.record("after") }
        loop.onError { _, _ in log.record("onError") }
        await #expect(throws: UnhandledTestError.self) { try await loop() }
        #expect(log.events == ["body@0"])
        #expect(loop.failed == false)
        #expect(loop.isRunning == false)
    }

    @Test("100 start/cancel cycles leave nothing running and no sleeper behind")
    func startCancelCycles() async throws {
        let clock = VirtualClock()
        let counter = Counter()
        let loop = try Loop(seconds: 1, clock: clock.loopClock) { _ in counter.increment() }
        for _ in 0..<100 {
            loop.restart()
        }
        await clock.advance(by: .milliseconds(500))
        // Only the last accepted run is alive: from now on exactly one body per second.
        let afterCycles = counter.current
        #expect(afterCycles >= 1)
        await clock.advance(by: .seconds(3))
        #expect(counter.current == afterCycles + 3)
        loop.cancel()
        await clock.settle()
        #expect(loop.isRunning == false)
    }

    /// `run()` is called inside a task the test created: wait until that task got as far as
    /// accepting the run, so that `advance` knows to wait for the loop.
    private func waitUntilRunning(_ loop: Loop) async {
        while !loop.isRunning { await Task.yield() }
    }
}
