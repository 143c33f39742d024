// swift-tools-version:6.1
// The benchmarks of swift-loops: a package of its own, so that users of the library never
// build it. `make bench` (at the repository root) builds it in release mode and runs it.
import PackageDescription

let package = Package(
    name: "swift-loops-benchmarks",
    dependencies: [
        .package(name: "swift-loops", path: ".."),
    ],
    targets: [
        // Clocks, getrusage, RSS, and the raw timerfd loop (the floor) on our C core.
        // The raw loop's calls into the C core resolve against the Loops product the executable
        // links.
        .target(name: "CBenchSupport"),
        .executableTarget(
            name: "LoopsBenchmarks",
            dependencies: [
                "CBenchSupport",
                .product(name: "Loops", package: "swift-loops"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // `make bench-postgres`: claims against a real PostgreSQL (its own product, so that
        // `make bench` does not build postgres-nio).
        .executableTarget(
            name: "PostgresBenchmarks",
            dependencies: [
                .product(name: "Loops", package: "swift-loops"),
                .product(name: "LoopsPostgres", package: "swift-loops"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
