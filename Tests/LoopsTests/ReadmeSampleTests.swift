import Foundation
import Loops
import LoopsTestKit
import Testing

private struct ReportServerUnavailable: Error {}
private func sendDailyReport() async throws {}
private func backUp() async throws {}
private func cleanUp() async throws {}
private actor CounterActor { var value = 0; func increment() { value += 1 } }

/// The README's code samples, verbatim where possible: they must keep compiling and doing what the
/// README says as the API changes.
@Test("the README samples compile and behave as described")
func readmeSamples() async throws {
    let printer = try Loop(seconds: 5) { loop in
        print("iteration", loop.currentLoop)
    }
    try printer.start()

    let report = try Loop(times: [TimeOfDay(hour: 9, timeZone: TimeZone(identifier: "Europe/Berlin"))]) { _ in
        try await sendDailyReport()
    }
    report.addErrorType(ReportServerUnavailable.self)   // retried with exponential back-off
    try report.start()

    let backup = try Loop(schedule: .calendar("Mon..Fri *-*-* 02:30")) { _ in try await backUp() }
    let cleanup = try Loop(schedule: .cron("*/15 * * * *")) { _ in try await cleanUp() }
    let next = try Schedule.cron("0 9 * * Mon-Fri").fireDates(from: .now).prefix(5)
    #expect(Array(next).count == 5)
    _ = (backup, cleanup)
    printer.cancel(); report.cancel()

    let counter = CounterActor()
    let clock = VirtualClock()
    let loop = try Loop(seconds: 5, clock: clock.loopClock) { _ in await counter.increment() }
    try loop.start()
    await clock.advance(by: .seconds(12))   // bodies at 0 s, 5 s and 10 s have run
    await clock.stepWallClock(by: .seconds(-3600))   // simulate an NTP step
    #expect(await counter.value == 3)
    let precise = try Loop(seconds: 1, clock: .precise) { _ in }
    let onQueue = try Loop(seconds: 1, executor: DispatchQueueExecutor(DispatchQueue(label: "q"))) { _ in }
    _ = (precise, onQueue)
    loop.cancel()
    await clock.settle()
}
