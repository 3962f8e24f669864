// swift-tools-version:6.1
// What a Swift developer would pick instead of Secure RPC: a gRPC (grpc-swift-2) echo over
// HTTP/2 with mutual TLS, raw-bytes messages, measured in the same invocation as our
// RPCSEC_GSS privacy calls (`rpcbench gss`, run as a child process). A package of its own so
// that the main package's build and test command never build gRPC (a long build).
//
//   swift build -c release --product rpcbench --scratch-path .build-bench   # in the repository root
//   swift run -c release --package-path Benchmarks/GRPCEcho grpc-echo-bench
import PackageDescription

let package = Package(
    name: "GRPCEcho",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/grpc/grpc-swift-2", exact: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", exact: "2.9.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .executableTarget(
            name: "grpc-echo-bench",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
