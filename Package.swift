// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "skiff",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SkiffRaft", targets: ["SkiffRaft"]),
        .library(name: "SkiffStorage", targets: ["SkiffStorage"]),
        .library(name: "SkiffKV", targets: ["SkiffKV"]),
        .executable(name: "skiff", targets: ["skiff"]),
        .executable(name: "skiff-wal", targets: ["skiff-wal"]),
        .executable(name: "skiff-torture", targets: ["skiff-torture"]),
        // Loaded into `skiff serve` by skiff-torture (LD_PRELOAD) to simulate power loss and disk faults.
        .library(name: "SkiffPowerLossShim", type: .dynamic, targets: ["SkiffPowerLossShim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLZ4", pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(
            name: "CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]),
        .target(name: "SkiffRaft"),
        .target(name: "SkiffCheck"),
        .target(name: "SkiffClient"),
        .target(name: "SkiffSimulation", dependencies: ["SkiffRaft", "SkiffExternal"]),
        .target(name: "SkiffKV"),
        .target(name: "SkiffRESP", dependencies: ["SkiffKV", .product(name: "NIOCore", package: "swift-nio")]),
        .target(
            name: "SkiffTransport",
            dependencies: [
                "SkiffRaft", "CZlib",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "SkiffServer",
            dependencies: [
                "SkiffClient",
                "SkiffRaft", "SkiffStorage", "SkiffExternal", "SkiffKV", "SkiffRESP", "SkiffTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        .executableTarget(
            name: "skiff",
            dependencies: [
                "SkiffServer",
                "SkiffClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "SkiffStorage",
            dependencies: [
                "SkiffRaft", "CLZ4", "CZlib",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]),
        .target(
            name: "SkiffExternal",
            dependencies: ["SkiffRaft", "SkiffStorage", .product(name: "SystemPackage", package: "swift-system")]),
        .executableTarget(
            name: "skiff-wal",
            dependencies: [
                "SkiffStorage", "SkiffKV", "SkiffExternal",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tools/skiff-wal"),
        .executableTarget(
            name: "skiff-bench",
            dependencies: [
                "SkiffStorage", "SkiffRaft",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tools/skiff-bench"),
        .executableTarget(
            name: "skiff-torture",
            dependencies: [
                "SkiffCheck", "SkiffClient", "SkiffRaft", "SkiffServer", "SkiffTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tools/skiff-torture"),
        .target(name: "SkiffPowerLossShim", path: "Tools/power-loss-shim", linkerSettings: [.linkedLibrary("dl"), .linkedLibrary("pthread")]),
        .executableTarget(
            name: "skiff-wal-writer",
            dependencies: ["SkiffStorage"],
            path: "Tools/skiff-wal-writer"),
        .testTarget(name: "SkiffKVTests", dependencies: ["SkiffKV"]),
        .testTarget(name: "SkiffCheckTests", dependencies: ["SkiffCheck", "SkiffRaft"]),
        .testTarget(name: "SkiffExternalTests", dependencies: ["SkiffExternal", "SkiffStorage"]),
        .testTarget(
            name: "SkiffTransportTests",
            dependencies: [
                "SkiffTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "SkiffServerTests",
            dependencies: ["skiff", "skiff-torture", "SkiffServer", "SkiffKV", "SkiffClient", .product(name: "NIOCore", package: "swift-nio")],
            exclude: ["Scripts"]),
        .testTarget(
            name: "SkiffRESPTests",
            dependencies: [
                "SkiffRESP", "SkiffKV",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]),
        .testTarget(
            name: "SkiffRaftTests",
            dependencies: ["SkiffRaft", "SkiffSimulation"]),
        .testTarget(
            name: "SkiffStorageTests",
            dependencies: [
                "SkiffStorage", "SkiffExternal", "skiff-wal", "skiff-wal-writer",
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["Golden"]),
    ],
    swiftLanguageModes: [.v6]
)
