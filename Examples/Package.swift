// swift-tools-version: 6.1
//
// The examples of Secure RPC for Swift, as a package of their own that depends on the
// library the way an application would (here by path; elsewhere by its URL). One package
// for all of them so that the test command builds the library once for the lot.
//
//   swift build                    # from Examples/
//   bash run.sh                    # builds and runs them against a keyserver of their own
//
// - EchoInterface, echo-server, echo-client: an authenticated echo service from its
//   interface file (echo.x), RPCSEC_GSS with privacy or AUTH_DH.
// - TestEchoInterface, c-service-client: a Swift client for an existing C service (the
//   rpcgen + libtirpc TESTECHO server of Tests/CPeers), found through rpcbind or by port.
import PackageDescription

let package = Package(
    name: "SecureRPCExamples",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "SecureRPC", path: ".."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // Every .x file in these targets becomes Swift at build time (types, a typed client,
        // a service protocol). The generated code uses XDR, ONCRPC and NIOCore.
        .target(
            name: "EchoInterface",
            dependencies: [
                .product(name: "XDR", package: "SecureRPC"),
                .product(name: "ONCRPC", package: "SecureRPC"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            plugins: [.plugin(name: "XDRGenPlugin", package: "SecureRPC")]
        ),
        .executableTarget(
            name: "echo-server",
            dependencies: [
                "EchoInterface",
                .product(name: "SecureRPC", package: "SecureRPC"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "echo-client",
            dependencies: [
                "EchoInterface",
                .product(name: "SecureRPC", package: "SecureRPC"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(
            name: "TestEchoInterface",
            dependencies: [
                .product(name: "XDR", package: "SecureRPC"),
                .product(name: "ONCRPC", package: "SecureRPC"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            plugins: [.plugin(name: "XDRGenPlugin", package: "SecureRPC")]
        ),
        .executableTarget(
            name: "c-service-client",
            dependencies: [
                "TestEchoInterface",
                .product(name: "SecureRPC", package: "SecureRPC"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
