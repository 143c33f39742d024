import Foundation

// swift-loops benchmarks. Without arguments: every scenario, each implementation in its own
// child process, results in ./bench-results/. `child <scenario> <implementation> [n]` runs one
// measurement and prints one JSON line (what the orchestrator runs); `child floor [n]` measures
// the memory floor, n bare tasks each suspended in one continuation.
//
//   LoopsBenchmarks [--output DIR] [precision|scale|million|idle|cost ...]

let arguments = Array(CommandLine.arguments.dropFirst())

func implementation(_ name: String) -> Implementation {
    guard let value = Implementation(rawValue: name) else {
        fail("unknown implementation \(name); one of \(Implementation.allCases.map(\.rawValue))")
    }
    return value
}

func integer(_ text: String?, default value: Int) -> Int {
    guard let text else { return value }
    guard let number = Int(text) else { fail("expected a number, got \(text)") }
    return number
}

if arguments.first == "child", arguments.count >= 2, arguments[1] == "floor" {
    print(encodeLine(floorChild(tasks: integer(arguments.count > 2 ? arguments[2] : nil, default: 100_000))))
    fflush(nil)
    exit(0)
} else if arguments.first == "child" {
    guard arguments.count >= 3 else { fail("usage: child <scenario> <implementation> [n]") }
    let which = implementation(arguments[2])
    let extra = arguments.count > 3 ? arguments[3] : nil
    switch arguments[1] {
    case "precision":
        print(encodeLine(precisionChild(which, run: integer(extra, default: 1))))
    case "scale":
        // child scale IMPL LOOPS [PERIOD_SECONDS]
        let period = integer(arguments.count > 4 ? arguments[4] : nil, default: 1)
        print(encodeLine(scaleChild(which, loops: integer(extra, default: 1000), period: Int64(period) * second)))
    case "idle":
        print(encodeLine(idleChild(which)))
    case "cost":
        costChild(which, ticks: integer(extra, default: 100))
    default:
        fail("unknown scenario \(arguments[1])")
    }
    fflush(nil)
    // Loops, timers and tasks are left running: the process ends here.
    exit(0)
} else {
    var output = "bench-results"
    var only = Set<String>()
    var rest = arguments[...]
    while let argument = rest.popFirst() {
        if argument == "--output", let directory = rest.popFirst() {
            output = directory
        } else {
            only.insert(argument)
        }
    }
    var orchestrator = Orchestrator(outputDirectory: output)
    orchestrator.run(only: only)
}
