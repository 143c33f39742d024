import Foundation

/// Runs every scenario, each implementation in a process of its own (so that threads, RSS and
/// context switches of one never count for another), and writes the results.
struct Orchestrator {
    let executable: String
    let outputDirectory: URL
    var lines: [String] = []
    var markdown: [String] = []

    init(outputDirectory: String) {
        executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        self.outputDirectory = URL(fileURLWithPath: outputDirectory)
    }

    mutating func run(only: Set<String>) {
        try? FileManager.default.createDirectory(at: outputDirectory, withIntermediateDirectories: true)
        let started = Date()
        if only.isEmpty || only.contains("precision") { precision() }
        if only.isEmpty || only.contains("scale") { scale() }
        if only.isEmpty || only.contains("million") { million() }
        if only.isEmpty || only.contains("idle") || only.contains("cost") { idleAndCost(only: only) }
        let elapsed = Date().timeIntervalSince(started)
        let table = markdown.joined(separator: "\n")
        write("results.jsonl", lines.joined(separator: "\n") + "\n")
        write("results.md", machineDescription() + "\n\n" + table + "\n")
        print("\n" + machineDescription() + "\n")
        print(table)
        print("\nall scenarios in \(Int(elapsed)) s; results in \(outputDirectory.path)/")
    }

    // MARK: Scenarios

    /// What the precision and engine-cost scenarios measure, in table order.
    private static let perTickImplementations: [Implementation] = [.rawTimerfd, .asyncFloor, .globalFloor, .loopPrecise, .loop, .loopQueue, .loopDispatch, .dispatchTimer, .taskSleep]


    private mutating func precision() {
        let implementations = Self.perTickImplementations
        var runs: [Implementation: [PrecisionResult]] = [:]
        // Interleaved, so that a noisy moment of the machine hits every implementation alike.
        for run in 1...3 {
            for implementation in implementations {
                log("precision run \(run)/3: \(implementation.rawValue)")
                guard let result: PrecisionResult = child(["precision", implementation.rawValue, "\(run)"]) else { continue }
                runs[implementation, default: []].append(result)
            }
        }
        markdown.append("""
        ### Precision: 1 loop, 10 ms period, 1000 ticks (median of 3 runs, by p50)

        | implementation | p50 µs | p99 µs | max µs | drift µs | CPU µs/tick | vol. switches/tick |
        |---|---:|---:|---:|---:|---:|---:|
        """)
        for implementation in implementations {
            guard let results = runs[implementation], !results.isEmpty else {
                markdown.append("| \(implementation.title) | failed | | | | | |")
                continue
            }
            let sorted = results.sorted { $0.latenessP50Microseconds < $1.latenessP50Microseconds }
            let chosen = sorted[(sorted.count - 1) / 2]
            emit(chosen)
            let row = [
                implementation.title, f(chosen.latenessP50Microseconds), f(chosen.latenessP99Microseconds),
                f(chosen.latenessMaxMicroseconds), f(chosen.driftMicroseconds), f(chosen.cpuMicrosecondsPerTick),
                f(chosen.voluntarySwitchesPerTick, digits: 2),
            ]
            markdown.append("| " + row.joined(separator: " | ") + " |")
            print(markdown.last ?? "")
        }
        markdown.append("")
    }

    private mutating func scale() {
        markdown.append("""
        ### Scale: n loops at 1 s, phases spread over the second, 10 s

        | implementation | loops | ticks delivered / expected | p50 µs | p99 µs | CPU % of one core | RSS KB/loop |
        |---|---:|---:|---:|---:|---:|---:|
        """)
        for loops in [1_000, 10_000, 100_000] {
            for implementation in [Implementation.loop, .loopPrecise, .loopDispatch, .dispatchTimer, .taskSleep] {
                log("scale \(loops): \(implementation.rawValue)")
                guard let result: ScaleResult = child(["scale", implementation.rawValue, "\(loops)"], timeout: 60) else {
                    markdown.append("| \(implementation.title) | \(loops) | failed | | | | |")
                    continue
                }
                emit(result)
                let row = [
                    implementation.title, "\(loops)", "\(result.ticksDelivered) / \(result.ticksExpected)",
                    f(result.latenessP50Microseconds), f(result.latenessP99Microseconds),
                    f(result.cpuPercentOfOneCore), f(result.rssPerLoopKilobytes, digits: 2),
                ]
                markdown.append("| " + row.joined(separator: " | ") + " |")
                print(markdown.last ?? "")
            }
        }
        // The floor under any task-based loop: a task suspended in one continuation.
        log("scale floor: bare tasks")
        if let floor: FloorResult = child(["floor", "100000"], timeout: 60) {
            emit(floor)
            markdown.append("| bare task suspended in one continuation (floor) | \(floor.tasks) | — | — | — | — | \(f(floor.rssPerTaskKilobytes, digits: 2)) |")
            print(markdown.last ?? "")
        } else {
            markdown.append("| bare task suspended in one continuation (floor) | 100000 | failed | | | | |")
        }
        markdown.append("")
    }

    /// 1,000,000 loops at 10 s in default mode, once (it takes two minutes and 4 GB): every
    /// tick delivered, with CPU, lateness and RSS.
    private mutating func million() {
        let loops = 1_000_000
        markdown.append("""
        ### Scale: 1,000,000 loops at 10 s, phases spread over the period, 100 s (one run)

        | implementation | loops | ticks delivered / expected | p50 µs | p99 µs | CPU % of one core | RSS KB/loop | latest start() behind its phase, ms |
        |---|---:|---:|---:|---:|---:|---:|---:|
        """)
        log("scale \(loops) at 10 s: loop")
        if let result: ScaleResult = child(["scale", Implementation.loop.rawValue, "\(loops)", "10"], timeout: 300) {
            emit(result)
            let row = [
                Implementation.loop.title, "\(loops)", "\(result.ticksDelivered) / \(result.ticksExpected)",
                f(result.latenessP50Microseconds), f(result.latenessP99Microseconds),
                f(result.cpuPercentOfOneCore), f(result.rssPerLoopKilobytes, digits: 2),
                f(result.startLagMaxMilliseconds),
            ]
            markdown.append("| " + row.joined(separator: " | ") + " |")
        } else {
            markdown.append("| \(Implementation.loop.title) | \(loops) | failed | | | | | |")
        }
        print(markdown.last ?? "")
        markdown.append("")
    }

    /// Idle children sleep almost all the time, so they run side by side with the callgrind
    /// runs (which use one core) instead of adding 50 s.
    private mutating func idleAndCost(only: Set<String>) {
        // The async floors measure the cost of a tick, not wakeups: their threads wake only for
        // their deadlines, as the raw floor's does.
        let idleImplementations = Implementation.allCases.filter { ![.asyncFloor, .globalFloor, .loopQueue].contains($0) }
        var idleProcesses: [(Implementation, Process, Pipe)] = []
        if only.isEmpty || only.contains("idle") {
            log("idle: all implementations side by side, 11 s")
            for implementation in idleImplementations {
                if let started = launch(["idle", implementation.rawValue]) {
                    idleProcesses.append((implementation, started.0, started.1))
                }
            }
        }
        var costs: [CostResult] = []
        if only.isEmpty || only.contains("cost") {
            let target = strippedCopy()
            for implementation in Self.perTickImplementations {
                log("cost (callgrind): \(implementation.rawValue)")
                if let cost = callgrind(implementation, executable: target) { costs.append(cost) }
            }
        }
        if !idleProcesses.isEmpty {
            markdown.append("""
            ### Idle: 1 loop at 2 s for 10 s (5 ticks)

            | implementation | wakeups/s | wakeups/tick |
            |---|---:|---:|
            """)
            for (implementation, process, pipe) in idleProcesses {
                guard let result: IdleResult = collect(process, pipe, timeout: 40) else {
                    markdown.append("| \(implementation.title) | failed | |")
                    continue
                }
                emit(result)
                markdown.append("| \(implementation.title) | \(f(result.wakeupsPerSecond, digits: 2)) | \(f(result.wakeupsPerTick, digits: 2)) |")
                print(markdown.last ?? "")
            }
            markdown.append("")
        }
        if !costs.isEmpty {
            markdown.append("""
            ### Engine cost: user-space instructions per tick (callgrind, 5 ms period)

            | implementation | instructions/tick | vs raw timerfd | vs async floor | vs DispatchSourceTimer |
            |---|---:|---:|---:|---:|
            """)
            func ratio(_ cost: CostResult, to reference: Implementation) -> String {
                guard let base = costs.first(where: { $0.implementation == reference })?.instructionsPerTick else { return "–" }
                return f(cost.instructionsPerTick / base, digits: 2) + "×"
            }
            for cost in costs {
                emit(cost)
                let ratios = [Implementation.rawTimerfd, .asyncFloor, .dispatchTimer].map { ratio(cost, to: $0) }
                markdown.append("| \(cost.implementation.title) | \(f(cost.instructionsPerTick, digits: 0)) | \(ratios.joined(separator: " | ")) |")
                print(markdown.last ?? "")
            }
            markdown.append("")
        }
    }

    /// Instructions per tick: the difference between a long and a short run, so that process
    /// start-up and teardown cancel out.
    private func callgrind(_ implementation: Implementation, executable: String) -> CostResult? {
        let short = 50
        let long = 250
        guard let irShort = instructions(implementation, ticks: short, executable: executable),
              let irLong = instructions(implementation, ticks: long, executable: executable) else { return nil }
        return CostResult(
            implementation: implementation,
            shortTicks: short,
            longTicks: long,
            instructionsShort: irShort,
            instructionsLong: irLong,
            instructionsPerTick: Double(irLong - irShort) / Double(long - short)
        )
    }

    /// Valgrind 3.19 gives up on the DWARF of Swift 6.3 release builds ("possibly corrupted
    /// debuginfo"): it runs a stripped copy (same code, no debug sections).
    private func strippedCopy() -> String {
        let copy = outputDirectory.appendingPathComponent("LoopsBenchmarks.stripped").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["strip", "-o", copy, executable]
        guard (try? process.run()) != nil else { return executable }
        process.waitUntilExit()
        return process.terminationStatus == 0 ? copy : executable
    }

    private func instructions(_ implementation: Implementation, ticks: Int, executable: String) -> Int? {
        let output = outputDirectory.appendingPathComponent("callgrind.\(implementation.rawValue).\(ticks).out").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "valgrind", "--tool=callgrind", "--callgrind-out-file=\(output)",
            executable, "child", "cost", implementation.rawValue, "\(ticks)",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch {
            log("valgrind cannot start: \(error)")
            return nil
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let text = try? String(contentsOfFile: output, encoding: .utf8) else {
            log("callgrind run of \(implementation.rawValue) failed (status \(process.terminationStatus))")
            return nil
        }
        for line in text.split(separator: "\n") where line.hasPrefix("summary:") || line.hasPrefix("totals:") {
            if let value = Int(line.split(separator: " ").last ?? "") { return value }
        }
        return nil
    }

    // MARK: Children

    private func child<Result: Decodable>(_ arguments: [String], timeout: TimeInterval = 40) -> Result? {
        guard let (process, pipe) = launch(arguments) else { return nil }
        return collect(process, pipe, timeout: timeout)
    }

    private func launch(_ arguments: [String]) -> (Process, Pipe)? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["child"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        do { try process.run() } catch {
            log("cannot start \(arguments): \(error)")
            return nil
        }
        return (process, pipe)
    }

    private func collect<Result: Decodable>(_ process: Process, _ pipe: Pipe, timeout: TimeInterval) -> Result? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning {
            log("child \(process.arguments ?? []) timed out; stopping it")
            process.terminate()
            process.waitUntilExit()
            return nil
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        guard process.terminationStatus == 0,
              let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last,
              let result = try? JSONDecoder().decode(Result.self, from: Data(line.utf8)) else {
            log("child \(process.arguments ?? []) failed (status \(process.terminationStatus))")
            return nil
        }
        return result
    }

    // MARK: Output

    private mutating func emit<Result: Encodable>(_ result: Result) {
        let line = encodeLine(result)
        lines.append(line)
        print(line)
    }

    private func write(_ name: String, _ text: String) {
        try? text.write(to: outputDirectory.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    private func log(_ message: String) {
        FileHandle.standardError.write(Data("[bench] \(message)\n".utf8))
    }

    private func f(_ value: Double, digits: Int = 1) -> String {
        value.isFinite ? String(format: "%.\(digits)f", value) : "–"
    }

    private func machineDescription() -> String {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "unknown"
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return "Machine: \(ProcessInfo.processInfo.activeProcessorCount) CPUs (\(model)), Linux \(release); \(Date())"
    }
}

/// One JSON line, keys sorted.
func encodeLine<Result: Encodable>(_ result: Result) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    guard let data = try? encoder.encode(result) else { return "{}" }
    return String(decoding: data, as: UTF8.self)
}
