// swift-tools-version:6.2
// The libFuzzer targets of swift-loops: a package of its own, so that users of the library never
// build it and a plain `swift build` never meets executables without a `main` (libFuzzer
// supplies it). `make fuzz` (at the repository root) builds it with
// `--sanitize=fuzzer --sanitize=address` and runs each target; see Documentation/Reliability.md.
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// One executable per entry point, each exporting `LLVMFuzzerTestOneInput`.
let fuzzTargets = ["FuzzCalendar", "FuzzCron", "FuzzTimes", "FuzzDuration", "FuzzFrom", "FuzzNextArguments"]

let package = Package(
    name: "swift-loops-fuzz",
    dependencies: [
        .package(name: "swift-loops", path: ".."),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        // The properties every schedule's instants must have, shared by the targets.
        .target(
            name: "FuzzSupport",
            dependencies: [.product(name: "Loops", package: "swift-loops")],
            swiftSettings: strictSettings
        ),
    ] + fuzzTargets.map { name in
        .executableTarget(
            name: name,
            dependencies: [
                "FuzzSupport",
                .product(name: "Loops", package: "swift-loops"),
                .product(name: "LoopsCommandLine", package: "swift-loops"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        )
    }
)
