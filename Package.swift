// swift-tools-version:6.2
// Swift 6.2 is the real minimum: swift-log 1.16.2 and swift-service-lifecycle 2.13.0 declare tools version 6.2.
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "swift-loops",
    products: [
        .library(name: "Loops", targets: ["Loops"]),
        .library(name: "LoopsTestKit", targets: ["LoopsTestKit"]),
        .library(name: "LoopsSystemd", targets: ["LoopsSystemd"]),
        .library(name: "LoopsServiceLifecycle", targets: ["LoopsServiceLifecycle"]),
        // One run per slot across replicas, on PostgreSQL: the only product that builds postgres-nio.
        .library(name: "LoopsPostgres", targets: ["LoopsPostgres"]),
        // The parsing behind the `loops` tool, a product so that the fuzz targets of Fuzz/ (a
        // package of their own) can run it in-process; not a stable API.
        .library(name: "LoopsCommandLine", targets: ["LoopsCommandLine"]),
        .executable(name: "loops", targets: ["LoopsCommand"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        // Only the `loops` tool uses it (`loops run --metrics-file`); no library product depends on it.
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // LoopsPostgres (and the `loops` tool's --postgres) only; `make demo` and users of Loops
        // alone never build it.
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        // `make docs` only: a command plugin, no product links it.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin.git", from: "1.5.0"),
    ],
    targets: [
        // The C timer core: timerfd per clock, absolute deadlines, errno values.
        .target(name: "CLoopsCore"),
        // Fault injection for the tests: replaces timerfd_create, timerfd_settime, read,
        // epoll_wait and eventfd in the test executable, where CLoopsCore is linked too. Only
        // test targets depend on it, so no product (and no release build of one) contains it.
        .target(
            name: "CLoopsFaults",
            path: "Tests/CLoopsFaults",
            linkerSettings: [.linkedLibrary("dl")]
        ),
        // libsystemd through pkg-config (Debian: libsystemd-dev).
        .systemLibrary(
            name: "CSystemd",
            pkgConfig: "libsystemd",
            providers: [.apt(["libsystemd-dev"])]
        ),
        .target(
            name: "Loops",
            dependencies: [
                "CLoopsCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "LoopsTestKit",
            dependencies: ["Loops"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "LoopsSystemd",
            dependencies: ["CSystemd", "Loops", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "LoopsServiceLifecycle",
            dependencies: [
                "Loops",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "LoopsPostgres",
            dependencies: [
                "Loops",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // Everything of `loops next` short of writing to stdout, and the value formats of the tool.
        .target(
            name: "LoopsCommandLine",
            dependencies: [
                "Loops",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "LoopsCommand",
            dependencies: [
                "Loops",
                "LoopsCommandLine",
                "LoopsSystemd",
                "LoopsPostgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            path: "Sources/loops",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "LoopsDemo",
            dependencies: ["Loops", .product(name: "Logging", package: "swift-log")],
            path: "Examples/LoopsDemo",
            swiftSettings: strictSettings
        ),
        // Children of the tests (posix_spawn and waitpid, every wait bounded): a support
        // target of the test targets, in no product.
        .target(
            name: "LoopsTestSupport",
            path: "Tests/LoopsTestSupport",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LoopsTests",
            dependencies: [
                "Loops",
                "LoopsTestKit",
                "CLoopsCore",
                "CLoopsFaults",
                "LoopsTestSupport",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LoopsSystemdTests",
            dependencies: ["LoopsSystemd", "Loops", "LoopsTestKit", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LoopsServiceLifecycleTests",
            dependencies: [
                "LoopsServiceLifecycle",
                "Loops",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LoopsPostgresTests",
            dependencies: ["LoopsPostgres", "Loops", "LoopsTestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "LoopsCommandTests",
            dependencies: ["Loops", "LoopsTestSupport"],
            swiftSettings: strictSettings
        ),
    ]
)
