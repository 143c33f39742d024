import Foundation
import Logging
import Testing

@testable import Loops

/// The loop's state machine and slot decisions on their own: events in, actions out, no clock,
/// no tasks.
@Suite("Loop state machine")
struct LoopStateMachineTests {
    static let second: Int64 = 1_000_000_000

    func machine(_ schedule: Schedule = .every(.seconds(1)), count: Int? = nil, missedTicks: MissedTickPolicy? = nil) -> LoopStateMachine {
        LoopStateMachine(
            schedule: schedule, count: count, reconnect: true, missedTicks: missedTicks, intervalClock: .continuous,
            logger: Logger(label: "loop-state-machine-tests")
        )
    }

    func anchor(elapsed: Int64, wall: Int64) -> RunAnchor {
        RunAnchor(elapsed: elapsed, wall: Date(nanosecondsSince1970: wall))
    }

    func now(_ elapsed: Int64, wall: Int64 = 1_800_000_000 * second) -> LoopNow {
        LoopNow(elapsed: elapsed, wall: wall)
    }

    @Test("start while idle activates; a second start throws; after cancel it queues behind the first")
    func admission() throws {
        var state = machine()
        let first = try state.admit(at: anchor(elapsed: 0, wall: 0), stopped: false)
        #expect(first.foundLoopIdle)
        guard case .at = state.beginning(of: first.id)?.beginning else {
            Issue.record("a run admitted while idle awaits nothing")
            return
        }
        #expect(throws: LoopError.self) { try state.admit(at: anchor(elapsed: 0, wall: 0), stopped: false) }
        #expect(state.requestCancel().isEmpty, "no task attached yet: nothing to cancel directly")
        let second = try state.admit(at: anchor(elapsed: 0, wall: 0), stopped: false)
        #expect(!second.foundLoopIdle)
        guard case .after(let predecessor) = state.beginning(of: second.id)?.beginning else {
            Issue.record("the queued run awaits the first")
            return
        }
        // The queued run is not cancelled: a third start is refused.
        #expect(throws: LoopError.self) { try state.admit(at: anchor(elapsed: 0, wall: 0), stopped: false) }
        // The first run ends: the second becomes the executing one, the loop stays running.
        #expect(state.runBegins(first.id).isCancelled)
        guard case .handOver(let handedOver) = state.runEnded(first.id) else {
            Issue.record("the first run's end must hand over to the second")
            return
        }
        #expect(handedOver === predecessor, "the completion the second run awaits is the one finished")
        #expect(state.isRunning && !state.isBeingCancelled)
        guard case .deactivateEngine = state.runEnded(second.id) else {
            Issue.record("the last run's end must deactivate the engine")
            return
        }
        #expect(!state.isRunning)
    }

    @Test("a run's task finds how to begin: at its admission's anchor, after its predecessor, or now once that one has ended")
    func beginning() throws {
        var state = machine()
        let first = try state.admit(at: anchor(elapsed: 7, wall: 9), stopped: false)
        guard case .at(let anchored) = state.beginning(of: first.id)?.beginning else {
            Issue.record("a run admitted while idle begins at its admission")
            return
        }
        #expect(anchored.elapsed == 7 && anchored.wall == Date(nanosecondsSince1970: 9))
        // Its task, which is not told the id, finds it as the run that has not begun — also
        // once runs are queued behind it.
        _ = state.requestCancel()
        let second = try state.admit(at: anchor(elapsed: 20, wall: 20), stopped: false)
        guard let (found, foundBeginning) = state.beginning(of: nil), case .at(let foundAnchor) = foundBeginning else {
            Issue.record("the task of a run admitted while idle finds its run")
            return
        }
        #expect(found == first.id && foundAnchor.elapsed == 7)
        // Once it has begun, its admission's anchor is spent, and no run waits to be found.
        #expect(state.runBegins(first.id).isCancelled)
        guard case .now = state.beginning(of: first.id)?.beginning else {
            Issue.record("a run past its start has no admission anchor left")
            return
        }
        #expect(state.beginning(of: nil) == nil)
        _ = state.requestCancel()
        let third = try state.admit(at: anchor(elapsed: 30, wall: 30), stopped: false)
        guard case .after(let secondAwaits) = state.beginning(of: second.id)?.beginning,
              case .after(let thirdAwaits) = state.beginning(of: third.id)?.beginning,
              secondAwaits !== thirdAwaits else {
            Issue.record("each queued run must await the completion of the run before it")
            return
        }
        // Once the first has ended, the second begins now; the third still awaits the second.
        guard case .handOver(let firstEnded) = state.runEnded(first.id), firstEnded === secondAwaits else {
            Issue.record("the first run's end must finish what the second awaits")
            return
        }
        guard case .now = state.beginning(of: second.id)?.beginning else {
            Issue.record("a run whose predecessor has ended begins at once, anchored then")
            return
        }
        guard case .after(let stillAwaits) = state.beginning(of: third.id)?.beginning, stillAwaits === thirdAwaits else {
            Issue.record("the third still awaits the second")
            return
        }
        _ = state.runBegins(second.id)
        guard case .handOver(let secondEnded) = state.runEnded(second.id), secondEnded === thirdAwaits else {
            Issue.record("the second run's end must finish what the third awaits")
            return
        }
    }

    @Test("a task attached after cancel() is cancelled at once")
    func attachAfterCancel() throws {
        var state = machine()
        let admission = try state.admit(at: anchor(elapsed: 0, wall: 0), stopped: false)
        _ = state.requestCancel()
        let action = state.attach(.awaited(Task { .finished }), to: admission.id)
        guard case .cancelTask = action else {
            Issue.record("expected cancelTask, got \(action)")
            return
        }
    }

    @Test("restart cancels the running run and queues a new one in one transition")
    func restart() throws {
        var state = machine()
        let first = try state.admit(at: anchor(elapsed: 0, wall: 0), stopped: false)
        _ = state.attach(.awaited(Task { .finished }), to: first.id)
        let restart = state.restart(at: anchor(elapsed: 5, wall: 5))
        #expect(restart.cancellations.count == 1, "the attached task is cancelled")
        #expect(state.isBeingCancelled)
        guard case .after(let predecessor) = state.beginning(of: restart.admission.id)?.beginning else {
            Issue.record("the new run awaits the cancelled one")
            return
        }
        guard case .handOver(let handedOver) = state.runEnded(first.id), handedOver === predecessor else {
            Issue.record("the cancelled run's end must finish the completion the new run awaits")
            return
        }
        // Restart while idle is a plain start.
        var idle = machine()
        let fresh = idle.restart(at: anchor(elapsed: 0, wall: 0))
        #expect(fresh.cancellations.isEmpty && fresh.admission.foundLoopIdle)
    }

    @Test("a run admitted stopped (shutdown before admission) runs no iteration")
    func stoppedAtAdmission() throws {
        var state = machine()
        let admission = try state.admit(at: anchor(elapsed: 0, wall: 0), stopped: true)
        #expect(!state.runBegins(admission.id).isCancelled)
        let step = state.iterationsBegin(admission.id, anchor: anchor(elapsed: 0, wall: 0), now: now(0))
        #expect(step.action == .end)
        #expect(state.nextInstant == nil)
    }

    @Test("interval run: first body at once, then sleeps on the grid; a late wake keeps the grid")
    func intervalGrid() throws {
        var state = machine()
        let admission = try state.admit(at: anchor(elapsed: 10 * Self.second, wall: 0), stopped: false)
        _ = state.runBegins(admission.id)
        #expect(state.iterationsBegin(admission.id, anchor: anchor(elapsed: 10 * Self.second, wall: 0), now: now(10 * Self.second)).action == .runBody(yieldFirst: true))
        #expect(state.nextInstant == .elapsed(11 * Self.second))
        let afterBody = state.bodySucceeded(admission.id, now: now(10 * Self.second + 300_000_000))
        #expect(afterBody.action == .sleep(deadline: 11 * Self.second, clock: .continuous))
        // 0.5 s late: still the slot at 11 s, the next at 12 s.
        #expect(state.woke(admission.id, reason: .deadlineReached, now: now(11 * Self.second + 500_000_000)).action == .runBody(yieldFirst: false))
        #expect(state.nextInstant == .elapsed(12 * Self.second))
        #expect(state.currentLoop == 1)
    }

    @Test("a wake after the following slot too is an overrun: the policy decides")
    func lateWakeIsAnOverrun() throws {
        for (policy, expectedNext) in [(MissedTickPolicy.delay, Int64(14_500_000_000)), (.skip, 14 * Self.second), (.burst, 12 * Self.second)] {
            var state = machine(missedTicks: policy)
            let admission = try state.admit(at: anchor(elapsed: 10 * Self.second, wall: 0), stopped: false)
            _ = state.runBegins(admission.id)
            _ = state.iterationsBegin(admission.id, anchor: anchor(elapsed: 10 * Self.second, wall: 0), now: now(10 * Self.second))
            _ = state.bodySucceeded(admission.id, now: now(10 * Self.second))
            // Woken at 13.5 s: slots 11, 12 and 13 s have passed.
            let step = state.woke(admission.id, reason: .deadlineReached, now: now(13 * Self.second + 500_000_000))
            #expect(step.action == .runBody(yieldFirst: false))
            #expect(state.nextInstant == .elapsed(expectedNext), "\(policy)")
        }
    }

    @Test("count ends the run after the last successful body")
    func countEnds() throws {
        var state = machine(count: 2)
        let admission = try state.admit(at: anchor(elapsed: 0, wall: 0), stopped: false)
        _ = state.runBegins(admission.id)
        _ = state.iterationsBegin(admission.id, anchor: anchor(elapsed: 0, wall: 0), now: now(0))
        #expect(state.bodySucceeded(admission.id, now: now(0)).action != .end)
        _ = state.woke(admission.id, reason: .deadlineReached, now: now(Self.second))
        #expect(state.bodySucceeded(admission.id, now: now(Self.second)).action == .end)
        #expect(state.currentLoop == 2)
    }

    @Test("stop() wakes the sleeper, which then ends; nextIteration is nil at once")
    func stopWhileSleeping() throws {
        var state = machine()
        let admission = try state.admit(at: anchor(elapsed: 0, wall: 0), stopped: false)
        _ = state.runBegins(admission.id)
        _ = state.iterationsBegin(admission.id, anchor: anchor(elapsed: 0, wall: 0), now: now(0))
        _ = state.bodySucceeded(admission.id, now: now(0))
        #expect(state.requestStop() == .wakeSleeper)
        #expect(state.nextInstant == nil)
        #expect(state.woke(admission.id, reason: .interrupted, now: now(1)).action == .end)
    }

    @Test("changeSchedule moves nextIteration at once: 500 ms → 250 ms at +100 ms gives +250 ms")
    func changeScheduleMovesNextAtOnce() throws {
        var state = machine(.every(.milliseconds(500)))
        let admission = try state.admit(at: anchor(elapsed: 0, wall: 0), stopped: false)
        _ = state.runBegins(admission.id)
        _ = state.iterationsBegin(admission.id, anchor: anchor(elapsed: 0, wall: 0), now: now(0))
        _ = state.bodySucceeded(admission.id, now: now(0))
        #expect(state.nextInstant == .elapsed(500_000_000))
        #expect(state.changeSchedule(to: .every(.milliseconds(250)), now: now(100_000_000)) == .wakeSleeper)
        #expect(state.nextInstant == .elapsed(250_000_000))
        // The interrupted sleep re-decides on the new schedule.
        #expect(state.woke(admission.id, reason: .interrupted, now: now(100_000_000)).action == .sleep(deadline: 250_000_000, clock: .continuous))
    }

    @Test("a handled error is retried after the back-off; an unhandled one fails the run")
    func bodyErrors() throws {
        struct Flaky: TransientError {}
        var state = machine()
        state.replaceJitter { $0 }
        let admission = try state.admit(at: anchor(elapsed: 0, wall: 0), stopped: false)
        _ = state.runBegins(admission.id)
        _ = state.iterationsBegin(admission.id, anchor: anchor(elapsed: 0, wall: 0), now: now(0))
        let retry = state.bodyThrew(admission.id, error: Flaky(), now: now(0))
        #expect(retry == .retry(deadline: 2 * Self.second, clock: .continuous, delay: 2 * Self.second))
        struct Fatal: Error {}
        #expect(state.bodyThrew(admission.id, error: Fatal(), now: now(0)) == .rethrow)
        guard case .failed = state.iterationsEnded(admission.id, .threw(Fatal(), taskCancelled: false)) else {
            Issue.record("an unhandled error must fail the run")
            return
        }
        #expect(state.failed)
    }

    @Test("an error thrown while being cancelled is the cancellation: no failure")
    func errorDuringCancellation() throws {
        var state = machine()
        let admission = try state.admit(at: anchor(elapsed: 0, wall: 0), stopped: false)
        _ = state.runBegins(admission.id)
        _ = state.requestCancel()
        struct Fatal: Error {}
        guard case .cancelled = state.iterationsEnded(admission.id, .threw(Fatal(), taskCancelled: false)) else {
            Issue.record("expected cancelled")
            return
        }
        #expect(!state.failed && state.isBeingCancelled)
    }

    @Test("wall-clock decisions: sleep to the next slot; an overrun runs now and continues after now")
    func wallDecisions() throws {
        let schedule = try Schedule.calendar("*:0/15 UTC")
        let base = Date(timeIntervalSince1970: 1_800_000_000)  // 2027-01-15T08:00:00Z
        let start = SchedulePosition(basis: .start(RunAnchor(elapsed: 0, wall: base.addingTimeInterval(60))), version: 0)
        let sleep = SlotDecision.decide(schedule, version: 0, after: start, policy: .skip, intervalClock: .continuous,
                                        now: LoopNow(elapsed: 0, wall: base.addingTimeInterval(60).nanosecondsSince1970))
        #expect(sleep.reportedNext == .wall(base.addingTimeInterval(900)))
        // From the slot at 08:15, woken at 08:50: skip runs once now, then continues at 09:00.
        let late = SchedulePosition(basis: .slot(.wall(base.addingTimeInterval(900))), version: 0)
        let overrun = SlotDecision.decide(schedule, version: 0, after: late, policy: .skip, intervalClock: .continuous,
                                          now: LoopNow(elapsed: 0, wall: base.addingTimeInterval(3000).nanosecondsSince1970))
        guard case .runNow(let slot, let next) = overrun.step else {
            Issue.record("expected runNow, got \(overrun.step)")
            return
        }
        #expect(slot == .wall(base.addingTimeInterval(3000)))
        #expect(next == .wall(base.addingTimeInterval(3600)))
        // .burst runs the missed 08:30 slot first.
        let burst = SlotDecision.decide(schedule, version: 0, after: late, policy: .burst, intervalClock: .continuous,
                                        now: LoopNow(elapsed: 0, wall: base.addingTimeInterval(3000).nanosecondsSince1970))
        #expect(burst.reportedNext == .wall(base.addingTimeInterval(1800)))
    }

    @Test("a schedule that answers in the past is rejected, reported once, and skipped")
    func rejectedSlotsAreReportedOnce() throws {
        let fixed = Date(timeIntervalSince1970: 1_000)
        let schedule = Schedule.custom("stuck") { _ in fixed }
        var state = machine(schedule)
        let admission = try state.admit(at: anchor(elapsed: 0, wall: 2_000 * Self.second), stopped: false)
        _ = state.runBegins(admission.id)
        let first = state.iterationsBegin(admission.id, anchor: anchor(elapsed: 0, wall: 2_000 * Self.second), now: now(0, wall: 2_000 * Self.second))
        // nextFire(onOrAfter: anchor) answers 1000 s: before the anchor, so it runs as an overrun
        // at now, and the following slot is searched from there: the schedule never gives one.
        #expect(first.action == .runBody(yieldFirst: true))
        #expect(first.rejected.map(\.instant) == [fixed])
        let second = state.bodySucceeded(admission.id, now: now(1, wall: 2_000 * Self.second + 1))
        #expect(second.action == .end)
        #expect(second.rejected.isEmpty, "the same rejected instant is reported once")
    }
}

extension LoopStateMachine.BeginAction {
    var isCancelled: Bool {
        if case .cancelled = self { return true }
        return false
    }
}

extension LoopStateMachine.IterationAction: Equatable {
    static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.end, .end): return true
        case let (.sleep(a, b), .sleep(c, d)): return a == c && b == d
        case let (.runBody(a), .runBody(b)): return a == b
        default: return false
        }
    }
}

extension LoopStateMachine.BodyFailureAction: Equatable {
    static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.rethrow, .rethrow): return true
        case let (.retry(a, b, c), .retry(d, e, f)): return a == d && b == e && c == f
        default: return false
        }
    }
}
