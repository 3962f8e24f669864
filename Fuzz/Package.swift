// swift-tools-version: 6.1
//
// The libFuzzer build of Secure RPC's network decoders (docs/FUZZING.md). A package of its
// own so that `swift build --sanitize fuzzer` never meets XDRGenPlugin: that flag links
// libFuzzer's `main` into every executable it builds, the plugin's `xdrgen` tool included,
// which then fails to link. Here the library targets are the main package's own source
// folders, reached through the symlinks in Modules/; the two targets that the main package
// builds with the plugin (KeyServer, SecureRPC) compile the checked-in output of xdrgen
// beside their link instead (Fuzz/regenerate.sh refreshes it; a main-suite test fails when
// it is stale). The main package's `swift build` and `swift test` never look in here.
//
// Keep each mirrored target's dependencies as in ../Package.swift.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

/// One libFuzzer executable per decoder family: its own corpus (Tests/Fuzz/corpus/<family>),
/// its own coverage and CPU time, and a crash names its family.
let families: [(name: String, dependencies: [Target.Dependency])] = [
    ("fuzz-oncrpc", ["ONCRPC"]),
    ("fuzz-authdh", ["SecureRPC"]),
    ("fuzz-gss", ["SecureRPC"]),
    ("fuzz-keyserver", ["KeyServer"]),
]

let package = Package(
    name: "SecureRPCFuzz",
    platforms: [.macOS(.v14)],
    products: families.map { .executable(name: $0.name, targets: [$0.name]) },
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        // MARK: the main package's modules, through symlinks
        .target(
            name: "XDR",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            path: "Modules/XDR",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ONCRPC",
            dependencies: [
                .product(name: "CoreMetrics", package: "swift-metrics"),
                "XDR",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Modules/ONCRPC",
            swiftSettings: swiftSettings
        ),
        .systemLibrary(name: "CGMP", path: "Modules/CGMP", pkgConfig: nil, providers: [.apt(["libgmp-dev"])]),
        .systemLibrary(name: "COpenSSLDES", path: "Modules/COpenSSLDES", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .target(name: "CMessageCrypto", path: "Modules/CMessageCrypto", linkerSettings: [.linkedLibrary("crypto")]),
        .target(
            name: "KeyCrypto",
            dependencies: [
                "CGMP", "COpenSSLDES", "CMessageCrypto",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            path: "Modules/KeyCrypto",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "KeyDirectory",
            dependencies: ["KeyCrypto", .product(name: "GRDB", package: "GRDB.swift")],
            path: "Modules/KeyDirectory",
            swiftSettings: swiftSettings
        ),
        // Built with XDRGenPlugin in the main package; here with keyserver.xdrgen.swift.
        .target(
            name: "KeyServer",
            dependencies: [
                .product(name: "CoreMetrics", package: "swift-metrics"),
                "KeyCrypto", "ONCRPC", "XDR",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Modules/KeyServer",
            exclude: ["src/keyserver.x"],
            swiftSettings: swiftSettings
        ),
        // Built with XDRGenPlugin in the main package; here with rpcsec_gss.xdrgen.swift.
        .target(
            name: "SecureRPC",
            dependencies: [
                .product(name: "CoreMetrics", package: "swift-metrics"),
                "ONCRPC", "XDR", "KeyCrypto", "KeyServer", "KeyDirectory",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Modules/SecureRPC",
            exclude: ["src/GSS/rpcsec_gss.x"],
            swiftSettings: swiftSettings
        ),

        // MARK: the fuzz targets
        // Replay mode shared by every family (normal builds): `fuzz-X FILE|DIR...`.
        .target(name: "FuzzReplay", path: "Targets/FuzzReplay", swiftSettings: swiftSettings),
    ] + families.map { family in
        .executableTarget(
            name: family.name,
            dependencies: family.dependencies + ["FuzzReplay"],
            path: "Targets/\(family.name)",
            swiftSettings: swiftSettings
        )
    }
)
