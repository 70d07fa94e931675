// swift-tools-version: 6.0
// rwanet: network resources as real-world-asset tokens, leased through state channels and sold
// through an AMM. The layering is the architecture (see README): pure cores (RWAWire, RWASession,
// RWALedger, RWAMarket, RWASim, and later RWAChannel) do no I/O; RWANode and the executables are
// thin shells.
import PackageDescription

let package = Package(
    name: "rwanet",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "rwa-peer", targets: ["rwa-peer"]),
        .executable(name: "rwa-sim", targets: ["rwa-sim"]),
        .executable(name: "rwa-amm", targets: ["rwa-amm"]),
        .executable(name: "rwa-arbiter", targets: ["rwa-arbiter"]),
        .executable(name: "rwa-netsim", targets: ["rwa-netsim"]),
        .executable(name: "rwa-lessor", targets: ["rwa-lessor"]),
        .executable(name: "rwa-lessee", targets: ["rwa-lessee"]),
        .executable(name: "rwa-fuzz", targets: ["rwa-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .target(name: "RWACrypto", dependencies: ["CSodium"]),
        .target(name: "CDatagramBatch"),
        .target(
            name: "RWAWire",
            dependencies: ["RWACrypto", "RWAMarket", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .target(name: "RWAMarket"),
        .target(
            name: "RWASession",
            dependencies: ["RWACrypto", "RWAWire", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .target(
            name: "RWALedger",
            dependencies: ["RWACrypto", "RWAWire", "RWAMarket", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .target(
            name: "RWAExchange",
            dependencies: ["RWACrypto", "RWAWire", "RWALedger", "RWAMarket"]
        ),
        .target(name: "RWAArbiter", dependencies: ["RWACrypto", "RWAWire", "RWALedger"]),
        .target(name: "RWAChannel", dependencies: ["RWACrypto", "RWAWire"]),
        .target(
            name: "RWAStore",
            dependencies: [
                "RWALedger", "RWAChannel", "RWACrypto", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ]
        ),
        .target(name: "RWASim", dependencies: ["RWAMarket"]),
        .target(
            name: "RWANetworkSim",
            dependencies: [
                "RWACrypto", "RWAWire", "RWALedger", "RWAArbiter", "RWAExchange", "RWAStore", "RWAChannel", "RWASim",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "rwa-netsim",
            dependencies: ["RWANetworkSim", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .target(
            name: "RWANode",
            dependencies: [
                "RWACrypto", "RWAWire", "RWASession", "RWALedger", "RWAArbiter", "RWAExchange", "RWAStore",
                "RWAMarket", "RWAChannel", "CDatagramBatch",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        // The Prometheus exposition of what RWANode records, served over HTTP (--metrics).
        .target(
            name: "RWAMetrics",
            dependencies: [
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(
            name: "RWACommandLine",
            dependencies: [
                "RWACrypto", "RWAWire", "RWALedger", "RWAStore", "RWANode",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .target(
            name: "RWALeaseDaemon",
            dependencies: [
                "RWACrypto", "RWAWire", "RWALedger", "RWAChannel", "RWAStore", "RWANode", "RWACommandLine", "RWASession",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "rwa-lessor",
            dependencies: [
                "RWAMetrics", "RWALeaseDaemon", "RWACommandLine", "RWANode",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "rwa-lessee",
            dependencies: [
                "RWAMetrics", "RWALeaseDaemon", "RWACommandLine", "RWANode", "RWALedger", "RWACrypto", "RWAWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "rwa-arbiter",
            dependencies: [
                "RWAMetrics", "RWACrypto", "RWAWire", "RWASession", "RWALedger", "RWAStore", "RWANode", "RWACommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "bench-arbiter",
            dependencies: [
                "RWACrypto", "RWAWire", "RWASession", "RWALedger", "RWAStore", "RWANode",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tools/bench/arbiter"
        ),
        .executableTarget(
            name: "rwa-peer",
            dependencies: [
                "RWACrypto", "RWAWire", "RWASession", "RWANode", "RWAMetrics",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "rwa-sim",
            dependencies: ["RWASim", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "rwa-amm",
            dependencies: [
                "RWAMetrics", "RWAMarket", "RWACrypto", "RWAWire", "RWASession", "RWALedger", "RWANode", "RWACommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "bench-amm",
            dependencies: [
                "RWACrypto", "RWAWire", "RWASession", "RWALedger", "RWAStore", "RWANode",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tools/bench/amm"
        ),
        .executableTarget(name: "bench-sim", dependencies: ["RWASim"], path: "Tools/bench/sim"),
        .executableTarget(
            name: "bench-lease",
            dependencies: [
                "RWACrypto", "RWAWire", "RWASession", "RWALedger", "RWAChannel", "RWAStore", "RWANode",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tools/bench/lease"
        ),
        .executableTarget(
            name: "bench-session",
            dependencies: ["RWACrypto", "RWAWire", "RWASession", "RWANode"],
            path: "Tools/bench/session"
        ),
        .executableTarget(
            name: "rwa-fuzz",
            dependencies: [
                "RWACrypto", "RWAWire", "RWASession", "RWALedger", "RWAMarket", "RWANode", "RWASim", "RWAChannel",
                "RWALeaseDaemon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Tools/rwa-fuzz"
        ),
        // Fuzz targets (Tools/fuzz): the properties in RWAFuzzChecks, one libFuzzer executable each.
        .target(
            name: "RWAFuzzChecks",
            dependencies: [
                "RWACrypto", "RWAWire", "RWASession", "RWALedger", "RWAMarket", "RWAChannel",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Tools/fuzz/Checks"
        ),
        .executableTarget(name: "fuzz-wire", dependencies: ["RWAFuzzChecks"], path: "Tools/fuzz/wire"),
        .executableTarget(name: "fuzz-session", dependencies: ["RWAFuzzChecks"], path: "Tools/fuzz/session"),
        .executableTarget(name: "fuzz-ledger", dependencies: ["RWAFuzzChecks"], path: "Tools/fuzz/ledger"),
        .executableTarget(name: "fuzz-market", dependencies: ["RWAFuzzChecks"], path: "Tools/fuzz/market"),
        .executableTarget(name: "fuzz-channel", dependencies: ["RWAFuzzChecks"], path: "Tools/fuzz/channel"),
        .target(
            name: "RWATestSupport", dependencies: ["RWACrypto", "RWAWire", "RWASim"], path: "Tests/RWATestSupport"),
        .testTarget(name: "RWACryptoTests", dependencies: ["RWACrypto"]),
        .testTarget(name: "RWAMarketTests", dependencies: ["RWAMarket", "RWATestSupport"]),
        .testTarget(name: "RWASimTests", dependencies: ["RWASim"]),
        .testTarget(name: "RWAFuzzRegressionTests", dependencies: ["RWAFuzzChecks", "RWATestSupport"]),
        .testTarget(name: "RWANetworkSimTests", dependencies: ["RWANetworkSim", "RWATestSupport"]),
        .testTarget(
            name: "RWAChannelTests",
            dependencies: ["RWAChannel", "RWAWire", "RWACrypto", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "RWALedgerTests",
            dependencies: [
                "RWALedger", "RWAArbiter", "RWAExchange", "RWACrypto", "RWAWire", "RWATestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "RWAArbiterTests",
            dependencies: [
                "RWALedger", "RWAStore", "RWAChannel", "RWASession", "RWANode", "RWACrypto", "RWAWire", "RWATestSupport", "RWAMarket",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "RWAWireTests",
            dependencies: ["RWAWire", "RWACrypto", "RWATestSupport", "RWAMarket", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .testTarget(
            name: "RWASessionTests",
            dependencies: [
                "RWASession", "RWAWire", "RWACrypto", "RWATestSupport", .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "RWANodeTests",
            dependencies: [
                "RWANode", "RWASession", "RWAWire", "RWACrypto", "RWATestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
    ]
)
