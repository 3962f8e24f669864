// swift-tools-version: 6.1
//
// Secure RPC for Swift: ONC RPC v2 with Sun-style AUTH_DH and a strong
// RPCSEC_GSS Diffie-Hellman mechanism. Module layering (see DESIGN.md):
//   XDR -> ONCRPC -> SecureRPC;  CGMP/COpenSSLDES -> KeyCrypto -> KeyServer/KeyDirectory/SecureRPC.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "SecureRPC",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "XDR", targets: ["XDR"]),
        .library(name: "ONCRPC", targets: ["ONCRPC"]),
        .library(name: "KeyCrypto", targets: ["KeyCrypto"]),
        .library(name: "KeyDirectory", targets: ["KeyDirectory"]),
        .library(name: "KeyDirectoryPostgres", targets: ["KeyDirectoryPostgres"]),
        .library(name: "KeyServer", targets: ["KeyServer"]),
        .library(name: "SecureRPC", targets: ["SecureRPC"]),
        .library(name: "SiteConfig", targets: ["SiteConfig"]),
        .library(name: "KeyDirectoryService", targets: ["KeyDirectoryService"]),
        .executable(name: "keyadmin", targets: ["keyadmin"]),
        .executable(name: "keydird", targets: ["keydird"]),
        .executable(name: "keyserverd", targets: ["keyserverd"]),
        .executable(name: "keylogin", targets: ["keylogin"]),
        .executable(name: "chkey", targets: ["chkey"]),
        .executable(name: "keylogout", targets: ["keylogout"]),
        .executable(name: "keylist", targets: ["keylist"]),
        .executable(name: "rpcbench", targets: ["rpcbench"]),
        .executable(name: "keybench", targets: ["keybench"]),
        .executable(name: "filesvc-server", targets: ["filesvc-server"]),
        .executable(name: "filesvc", targets: ["filesvc"]),
        .library(name: "XDRGenCore", targets: ["XDRGenCore"]),
        .executable(name: "xdrgen", targets: ["xdrgen"]),
        .plugin(name: "XDRGenPlugin", targets: ["XDRGenPlugin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        // A command plugin only (swift package generate-documentation): nothing it brings is built or linked.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        // Already under postgres-nio; named here because the store configures TLS itself.
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // MARK: wire encoding and RPC runtime
        .target(
            name: "XDR",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ONCRPC",
            dependencies: [
                "XDR",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // The daemons' --metrics endpoint: swift-metrics bootstrapped to Prometheus, served as
        // text over HTTP on SwiftNIO.
        .target(
            name: "MetricsEndpoint",
            dependencies: [
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: key material
        .systemLibrary(
            name: "CGMP",
            pkgConfig: nil,
            providers: [.apt(["libgmp-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSLDES",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "CMessageCrypto",
            linkerSettings: [.linkedLibrary("crypto")]
        ),
        .target(
            name: "KeyCrypto",
            dependencies: [
                "CGMP",
                "COpenSSLDES",
                "CMessageCrypto",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: the site: which directory servers a host trusts (securerpc.conf)
        .target(name: "SiteConfig", swiftSettings: swiftSettings),
        // The release number every executable prints for --version.
        .target(name: "Release", swiftSettings: swiftSettings),

        // MARK: the key directory
        .target(
            name: "KeyDirectory",
            dependencies: ["KeyCrypto", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: swiftSettings
        ),
        // The PostgreSQL store lives apart so that programs using only SQLite never link postgres-nio.
        .target(
            name: "KeyDirectoryPostgres",
            dependencies: [
                "KeyDirectory", "KeyCrypto",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "keyadmin",
            dependencies: ["KeyDirectoryService", "KeyServer", "SiteConfig", "Release",
                "KeyDirectory", "KeyDirectoryPostgres", "KeyCrypto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: the keyserver
        .target(
            name: "KeyServer",
            dependencies: [
                .product(name: "CoreMetrics", package: "swift-metrics"),
                "KeyCrypto", "ONCRPC", "XDR",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings,
            plugins: ["XDRGenPlugin"]
        ),

        .executableTarget(
            name: "keyserverd",
            dependencies: ["MetricsEndpoint", "SecureRPC", "KeyDirectoryService", "Release",
                "KeyServer", "KeyDirectory", "KeyCrypto", "ONCRPC", "SiteConfig",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "keylogin",
            dependencies: ["KeyDirectoryService", "SiteConfig", "Release", "KeyServer", "KeyDirectory", "KeyCrypto",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "chkey",
            dependencies: ["KeyDirectoryService", "SiteConfig", "Release", "SecureRPC", "KeyServer", "KeyDirectory", "KeyCrypto",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "keylogout",
            dependencies: ["Release", "KeyServer", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "keylist",
            dependencies: ["Release", "KeyServer", "SiteConfig", "ONCRPC", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),

        // MARK: authenticated calls
        .target(
            name: "SecureRPC",
            dependencies: [
                .product(name: "CoreMetrics", package: "swift-metrics"),
                "ONCRPC", "XDR", "KeyCrypto", "KeyServer", "KeyDirectory",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings,
            plugins: ["XDRGenPlugin"]
        ),

        // MARK: the site's directory service (keydird) and its clients
        .target(
            name: "KeyDirectoryService",
            dependencies: [
                .product(name: "CoreMetrics", package: "swift-metrics"),
                "SecureRPC", "KeyDirectory", "KeyServer", "KeyCrypto", "ONCRPC", "XDR", "SiteConfig",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings,
            plugins: ["XDRGenPlugin"]
        ),
        .executableTarget(
            name: "keydird",
            dependencies: ["MetricsEndpoint", "Release",
                "KeyDirectoryService", "SecureRPC", "KeyDirectory", "KeyDirectoryPostgres", "KeyServer", "KeyCrypto", "ONCRPC", "SiteConfig",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: example service and tools
        .target(
            name: "FileService",
            dependencies: [
                "XDR", "ONCRPC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings,
            plugins: ["XDRGenPlugin"]
        ),
        .executableTarget(
            name: "filesvc-server",
            dependencies: ["MetricsEndpoint", "KeyDirectoryService", "SiteConfig", "Release",
                "FileService", "ONCRPC", "SecureRPC", "KeyDirectory", "KeyServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "filesvc",
            dependencies: ["KeyDirectoryService", "SiteConfig", "Release",
                "FileService", "ONCRPC", "SecureRPC", "KeyDirectory", "KeyServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The C/OpenSSL baselines the benchmarks print beside their own figures.
        .target(name: "BenchBaselines", swiftSettings: swiftSettings),
        .executableTarget(
            name: "rpcbench",
            dependencies: ["Release", "BenchBaselines",
                "XDR", "ONCRPC", "SecureRPC", "KeyServer", "KeyCrypto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "keybench",
            dependencies: ["Release", "BenchBaselines",
                "KeyCrypto", "KeyDirectory", "KeyDirectoryPostgres", "KeyServer", "ONCRPC", "KeyDirectoryService", "SecureRPC", "SiteConfig",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // libFuzzer entry point for the XDR and RPC message decoders; built only with
        // `swift build --sanitize fuzzer` (see docs/FUZZING.md).
        .executableTarget(
            name: "rpcfuzz",
            dependencies: ["Release", "ONCRPC"],
            swiftSettings: swiftSettings
        ),

        // MARK: interface definitions to Swift (rpcgen for Swift, see docs/XDRGEN.md)
        .target(name: "XDRGenCore", swiftSettings: swiftSettings),
        .executableTarget(
            name: "xdrgen",
            dependencies: ["Release", "XDRGenCore", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings
        ),
        .plugin(name: "XDRGenPlugin", capability: .buildTool(), dependencies: ["xdrgen"]),

        // MARK: tests
        // A throwaway PostgreSQL server for the tests that need one (not a product).
        .target(name: "PostgresSupport", path: "Tests/PostgresSupport", swiftSettings: swiftSettings),
        .testTarget(name: "XDRTests", dependencies: ["XDR"], swiftSettings: swiftSettings),
        .testTarget(
            name: "ONCRPCTests",
            dependencies: [
                "ONCRPC", "XDR",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "InteropTests",
            dependencies: [
                "ONCRPC", "XDR", "FileService", "KeyServer", "KeyCrypto", "PostgresSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            exclude: ["with-rpcbind.sh"],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "SiteConfigTests", dependencies: ["SiteConfig"], swiftSettings: swiftSettings),
        .testTarget(name: "KeyCryptoTests", dependencies: ["KeyCrypto", .product(name: "Crypto", package: "swift-crypto")], swiftSettings: swiftSettings),
        .testTarget(
            name: "SecureRPCTests",
            dependencies: [
                "SecureRPC", "ONCRPC", "XDR", "KeyCrypto", "KeyServer", "FileService", "KeyDirectory",
                "KeyDirectoryService", "SiteConfig",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "KeyDirectoryTests",
            dependencies: ["KeyDirectory", "KeyDirectoryPostgres", "PostgresSupport", "KeyCrypto", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: swiftSettings
        ),
        // Fixtures/typezoo.x is turned into Swift by XDRGenPlugin at build time; CPeers/ holds
        // the rpcgen-generated C peers built by CPeers/build.sh during the test.
        .testTarget(
            name: "XDRGenTests",
            dependencies: [
                "XDRGenCore", "XDR", "ONCRPC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["CPeers", "Fixtures/edgecases.x.txt"],
            swiftSettings: swiftSettings,
            plugins: ["XDRGenPlugin"]
        ),
    ]
)
