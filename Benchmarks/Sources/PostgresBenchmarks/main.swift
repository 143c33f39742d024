import Foundation
import Loops
import LoopsPostgres

// `make bench-postgres`: what a PostgresRunStore costs, against the server that
// scripts/with-postgres.sh starts (URL in LOOPS_BENCH_POSTGRES_URL). Three runs of each
// measurement; medians printed as a Markdown table.

guard let url = ProcessInfo.processInfo.environment["LOOPS_BENCH_POSTGRES_URL"] else {
    FileHandle.standardError.write(Data("LOOPS_BENCH_POSTGRES_URL is not set; run `make bench-postgres`\n".utf8))
    exit(2)
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
}

func median(_ values: [Double]) -> Double { percentile(values, 0.5) }

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

let clock = ContinuousClock()
let base = Date(timeIntervalSince1970: 1_800_000_000)

/// One caller claiming successive slots: latency of each claim, and claims per second.
func claims(_ store: PostgresRunStore, loop: String, count: Int) async throws -> (p50: Double, p99: Double, perSecond: Double) {
    var latencies: [Double] = []
    let start = clock.now
    for index in 0..<count {
        let before = clock.now
        _ = try await store.claim(base.addingTimeInterval(Double(index)), of: loop)
        latencies.append(seconds(clock.now - before))
    }
    return (percentile(latencies, 0.5), percentile(latencies, 0.99), Double(count) / seconds(clock.now - start))
}

/// A claim and the record of its end, as a loop does around each body.
func claimAndComplete(_ store: PostgresRunStore, loop: String, count: Int) async throws -> (p50: Double, p99: Double) {
    var latencies: [Double] = []
    for index in 0..<count {
        let before = clock.now
        if let claim = try await store.claim(base.addingTimeInterval(Double(index)), of: loop) {
            try await store.complete(claim, outcome: .succeeded, finishedAt: Date())
        }
        latencies.append(seconds(clock.now - before))
    }
    return (percentile(latencies, 0.5), percentile(latencies, 0.99))
}

/// Three stores (three replicas) racing for every slot: slots decided per second.
func racing(_ stores: [PostgresRunStore], loop: String, slots: Int) async throws -> Double {
    let start = clock.now
    for index in 0..<slots {
        let slot = base.addingTimeInterval(Double(index))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for store in stores {
                group.addTask {
                    if let claim = try await store.claim(slot, of: loop) {
                        try await store.complete(claim, outcome: .succeeded, finishedAt: Date())
                    }
                }
            }
            try await group.waitForAll()
        }
    }
    return Double(slots) / seconds(clock.now - start)
}

/// A loop at interval 0 for `count` iterations: seconds per iteration, with or without a store.
func loopStep(store: (any RunStore)?, name: String, count: Int) async throws -> Double {
    let loop = try Loop(seconds: 0, count: count, name: name, store: store) { _ in }
    let start = clock.now
    try await loop.run()
    return seconds(clock.now - start) / Double(count)
}

var rows: [String: [Double]] = [:]
for run in 0..<3 {
    let store = try PostgresRunStore(url: url, lease: .seconds(30))
    try await store.migrate()
    let single = try await claims(store, loop: "claims-\(run)", count: 2000)
    rows["claim p50 ms", default: []].append(single.p50 * 1e3)
    rows["claim p99 ms", default: []].append(single.p99 * 1e3)
    rows["claims per second, one caller", default: []].append(single.perSecond)
    let both = try await claimAndComplete(store, loop: "complete-\(run)", count: 1000)
    rows["claim + complete p50 ms", default: []].append(both.p50 * 1e3)
    rows["claim + complete p99 ms", default: []].append(both.p99 * 1e3)
    let replicas = try (0..<3).map { _ in try PostgresRunStore(url: url, lease: .seconds(30)) }
    rows["slots per second, three replicas racing", default: []].append(try await racing(replicas, loop: "race-\(run)", slots: 500))
    let local = try await loopStep(store: nil, name: "local-\(run)", count: 2000)
    let stored = try await loopStep(store: store, name: "stored-\(run)", count: 1000)
    rows["loop iteration without a store µs", default: []].append(local * 1e6)
    rows["loop iteration with PostgresRunStore µs", default: []].append(stored * 1e6)
    for replica in replicas { replica.shutdown() }
    store.shutdown()
}

print("| measurement (median of 3 runs) | value |")
print("|---|---:|")
for key in rows.keys.sorted() {
    print("| \(key) | \(String(format: "%.2f", median(rows[key]!))) |")
}
