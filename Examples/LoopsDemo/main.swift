// The recipes of disnake.ext.tasks, ported to swift-loops, with short intervals.
// Run with `make demo`; it exits by itself in about 8 seconds.
import Foundation
import Logging
import Loops
import Synchronization

let started = ContinuousClock.now

/// Prints a line prefixed with the seconds since the demo started.
func say(_ recipe: String, _ message: String) {
    let elapsed = ContinuousClock.now - started
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    print(String(format: "%6.3f s  %-9@ %@", seconds, recipe as NSString, message as NSString))
}

/// Stands in for `bot.wait_until_ready()`.
actor Bot {
    private var ready = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func waitUntilReady() async {
        if ready { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func becomeReady() {
        ready = true
        for waiter in waiters { waiter.resume() }
        waiters = []
    }
}

/// A connection error the database library throws while the network is down.
struct ConnectionLost: Error, CustomStringConvertible {
    var description: String { "connection lost" }
}

var logger = Logger(label: "demo")
logger.logLevel = .info

// 1. A simple background task: prints an index every 0.5 s.
let index = Mutex(0)
let printer = try Loop(seconds: 0.5, logger: logger) { _ in
    let value = index.withLock { value in
        defer { value += 1 }
        return value
    }
    say("printer", "index \(value)")
}

// 2. Adding an error type to handle during reconnect: fails twice, then succeeds.
let attempts = Mutex(0)
let batchUpdate = try Loop(seconds: 3, count: 2, logger: logger) { loop in
    let attempt = attempts.withLock { value in
        value += 1
        return value
    }
    if attempt <= 2 {
        say("batch", "iteration \(loop.currentLoop), attempt \(attempt): connection lost, retrying after back-off")
        throw ConnectionLost()
    }
    say("batch", "iteration \(loop.currentLoop), attempt \(attempt): batch update done")
}
batchUpdate.addErrorType(ConnectionLost.self)
batchUpdate.afterLoop { loop in say("batch", "finished after \(loop.currentLoop) iterations") }

// 3. Looping a certain number of times before exiting.
let slowCount = try Loop(seconds: 0.3, count: 5, logger: logger) { loop in
    say("count", "current_loop \(loop.currentLoop)")
}
slowCount.afterLoop { loop in say("count", "done! (current_loop \(loop.currentLoop))") }

// 4. Waiting until the bot is ready before the loop starts.
let bot = Bot()
let readyPrinter = try Loop(seconds: 1, logger: logger) { loop in
    say("ready", "iteration \(loop.currentLoop) after the bot became ready")
}
readyPrinter.beforeLoop { _ in
    say("ready", "waiting...")
    await bot.waitUntilReady()
}

// 5. Doing something during cancellation: the bulker flushes what is left in afterLoop.
let batch = Mutex<[Int]>([])
let bulker = try Loop(seconds: 2, logger: logger) { _ in
    let items = batch.withLock { items in
        defer { items.removeAll() }
        return items
    }
    say("bulker", "bulk insert of \(items.count) items")
}
bulker.afterLoop { loop in
    let left = batch.withLock { $0 }
    if loop.isBeingCancelled, !left.isEmpty {
        try await Task.sleep(for: .milliseconds(100))  // the flush may await: it is shielded from the cancel
        say("bulker", "cancelled: flushed the last \(left.count) items")
    }
}

say("demo", "starting five loops")
for loop in [printer, batchUpdate, slowCount, readyPrinter, bulker] {
    try loop.start()
}

for item in 1...25 {
    try await Task.sleep(for: .milliseconds(250))
    batch.withLock { $0.append(item) }
    if item == 6 {
        say("demo", "the bot is ready")
        await bot.becomeReady()
    }
}
// ~6.25 s: wait for the batch loop's second iteration, then stop everything.
await batchUpdate.task?.value
say("demo", "cancelling printer, ready and bulker; stopping nothing else")
printer.cancel()
readyPrinter.cancel()
bulker.cancel()
for loop in [printer, readyPrinter, bulker, slowCount] {
    await loop.task?.value
}
say("demo", "all loops ended; running: \([printer, batchUpdate, slowCount, readyPrinter, bulker].filter(\.isRunning).count)")
