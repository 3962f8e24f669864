// grpc-echo-bench: RPCSEC_GSS privacy (our `rpcbench gss`, a child process) against what a Swift
// developer would pick instead, a grpc-swift-2 unary echo over HTTP/2 with mutual TLS and
// raw-bytes messages, alternated in one invocation, same payload size, sequential and with
// 32 calls in flight; medians and the ratio printed.

import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2

/// Messages are the payload bytes as they are: no protobuf in the way.
struct RawBytes: MessageSerializer, MessageDeserializer {
    func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}

struct Failure: Error, CustomStringConvertible {
    let description: String
}

@main
struct GRPCEchoBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grpc-echo-bench",
        abstract: "RPCSEC_GSS privacy (rpcbench gss) vs a grpc-swift-2 echo over HTTP/2 + mTLS, in one invocation.",
        discussion: """
        Build rpcbench first, from the repository root:
          swift build -c release --product rpcbench --scratch-path .build-bench
        then, from the same directory:
          swift run -c release --package-path Benchmarks/GRPCEcho grpc-echo-bench
        """
    )

    @Option(help: "Calls per measurement (each alternation measures both sides once).") var calls = 10_000
    @Option(help: "Alternations of the two systems; medians are printed.") var alternations = 3
    @Option(help: "Argument and result size in bytes.") var size = 4096
    /// Calls in flight for the concurrent measurement: what `rpcbench gss` uses.
    var concurrency: Int { 32 }
    @Option(help: "The rpcbench binary (release build).") var rpcbench = ".build-bench/release/rpcbench"
    @Flag(help: "gRPC without TLS (to see what TLS costs; the comparison itself is with mutual TLS).") var plaintext = false

    func validate() throws {
        guard calls >= concurrency, alternations > 0, size > 0 else {
            throw ValidationError("--calls must be at least \(concurrency) (the calls in flight), and every count positive")
        }
    }

    func run() async throws {
        guard FileManager.default.isExecutableFile(atPath: rpcbench) else {
            throw Failure(description: "no rpcbench at \(rpcbench): build it from the repository root with "
                          + "`swift build -c release --product rpcbench --scratch-path .build-bench`, or pass --rpcbench PATH")
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("grpc-echo-bench-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let pki = try TestPKI(directory: work)

        print("grpc-echo-bench: \(size)-byte echo on loopback TCP, \(calls) calls per measurement, median of \(alternations) alternations")
        print("  RPCSEC_GSS: `rpcbench gss` (srpc-dh ffdhe3072 context, privacy = AES-256-GCM), one process, one event loop thread")
        print("  gRPC: grpc-swift-2 2.4.3 + grpc-swift-nio-transport 2.9.2, HTTP/2, mutual TLS (P-256 certificates), unary, raw bytes\n")
        var gss: [(sequential: Double, concurrent: Double)] = []
        var grpc: [(sequential: Double, concurrent: Double)] = []
        for _ in 0..<alternations {
            gss.append(try runRPCBench())
            grpc.append(try await runGRPC(pki))
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let gssSequential = median(gss.map(\.sequential)), gssConcurrent = median(gss.map(\.concurrent))
        let grpcSequential = median(grpc.map(\.sequential)), grpcConcurrent = median(grpc.map(\.concurrent))
        func row(_ name: String, _ a: String, _ b: String) {
            print(name.padding(toLength: 30, withPad: " ", startingAt: 0)
                  + a.padding(toLength: 20, withPad: " ", startingAt: 0) + b)
        }
        row("", "sequential", "\(concurrency) in flight")
        row("RPCSEC_GSS privacy", String(format: "%.0f calls/s", gssSequential), String(format: "%.0f calls/s", gssConcurrent))
        row(plaintext ? "gRPC HTTP/2, no TLS" : "gRPC HTTP/2 + mTLS", String(format: "%.0f calls/s", grpcSequential), String(format: "%.0f calls/s", grpcConcurrent))
        row("RPCSEC_GSS privacy ÷ gRPC", String(format: "%.2f×", gssSequential / grpcSequential), String(format: "%.2f×", gssConcurrent / grpcConcurrent))
        print("\nper alternation (RPCSEC_GSS seq/conc, gRPC seq/conc): "
              + zip(gss, grpc).map { String(format: "%.0f/%.0f %.0f/%.0f", $0.sequential, $0.concurrent, $1.sequential, $1.concurrent) }
                  .joined(separator: "; "))
    }

    /// One `rpcbench gss` run limited to the privacy rows; returns its calls/s.
    func runRPCBench() throws -> (sequential: Double, concurrent: Double) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: rpcbench)
        process.arguments = ["gss", "--no-setups", "--no-openssl", "--only", "RPCSEC_GSS privacy",
                             "--calls", "\(calls)", "--rounds", "1", "--size", "\(size)"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw Failure(description: "rpcbench gss failed:\n\(text)") }
        // "    RPCSEC_GSS privacy   8332 calls/s ...", once under "sequential", once under "N in flight".
        let rates = text.split(separator: "\n").filter { $0.contains("RPCSEC_GSS privacy") }.compactMap { line in
            line.split(separator: " ").firstIndex(of: "calls/s").flatMap { Double(line.split(separator: " ")[$0 - 1]) }
        }
        guard rates.count == 2 else { throw Failure(description: "unexpected rpcbench gss output:\n\(text)") }
        return (rates[0], rates[1])
    }

    func runGRPC(_ pki: TestPKI) async throws -> (sequential: Double, concurrent: Double) {
        let echo = MethodDescriptor(service: ServiceDescriptor(fullyQualifiedService: "securerpc.bench.Echo"), method: "Echo")
        var router = RPCRouter<HTTP2ServerTransport.Posix>()
        router.registerHandler(forMethod: echo, deserializer: RawBytes(), serializer: RawBytes()) { request, _ in
            let single = try await ServerRequest(stream: request)
            return StreamingServerResponse(single: ServerResponse(message: single.message))
        }
        let serverTransport = HTTP2ServerTransport.Posix(
            address: .ipv4(host: "127.0.0.1", port: 0),
            transportSecurity: plaintext ? .plaintext : .mTLS(certificateChain: [.file(path: pki.serverCertificate, format: .pem)],
                                                              privateKey: .file(path: pki.serverKey, format: .pem)) { tls in
                tls.trustRoots = .certificates([.file(path: pki.authority, format: .pem)])
                tls.clientCertificateVerification = .noHostnameVerification
            }
        )
        let server = GRPCServer(transport: serverTransport, router: router)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            guard let port = try await serverTransport.listeningAddress.ipv4?.port else {
                throw Failure(description: "the gRPC server has no IPv4 address")
            }
            let client = GRPCClient(transport: try .http2NIOPosix(
                target: .ipv4(address: "127.0.0.1", port: port),
                transportSecurity: plaintext ? .plaintext : .mTLS(certificateChain: [.file(path: pki.clientCertificate, format: .pem)],
                                                                  privateKey: .file(path: pki.clientKey, format: .pem)) { tls in
                    tls.trustRoots = .certificates([.file(path: pki.authority, format: .pem)])
                    tls.serverCertificateVerification = .noHostnameVerification
                }
            ))
            group.addTask { try await client.runConnections() }
            let payload = [UInt8](repeating: 0x78, count: size)
            @Sendable func call() async throws {
                let answer = try await client.unary(request: ClientRequest(message: payload), descriptor: echo,
                                                    serializer: RawBytes(), deserializer: RawBytes(), options: .defaults) {
                    try $0.message
                }
                guard answer.count == payload.count else { throw Failure(description: "gRPC echo returned \(answer.count) bytes") }
            }
            for _ in 0..<50 { try await call() }
            var start = ContinuousClock.now
            for _ in 0..<calls { try await call() }
            let sequential = Double(calls) / Self.seconds(ContinuousClock.now - start)
            start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { callers in
                for _ in 0..<concurrency {
                    callers.addTask { for _ in 0..<(calls / concurrency) { try await call() } }
                }
                try await callers.waitForAll()
            }
            let concurrent = Double(calls / concurrency * concurrency) / Self.seconds(ContinuousClock.now - start)
            client.beginGracefulShutdown()
            server.beginGracefulShutdown()
            try await group.waitForAll()
            return (sequential, concurrent)
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

/// A certificate authority and a server and a client certificate signed by it (P-256, one
/// day), made with the openssl command line in `directory`.
struct TestPKI {
    let authority: String
    let serverCertificate: String, serverKey: String
    let clientCertificate: String, clientKey: String

    init(directory: URL) throws {
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        func openssl(_ arguments: [String]) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["openssl"] + arguments
            process.standardOutput = FileHandle.nullDevice
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw Failure(description: "openssl \(arguments.first ?? ""): \(text)") }
        }
        let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        let authority = path("ca.pem")
        try openssl(["req", "-x509"] + curve + ["-keyout", path("ca.key"), "-out", authority, "-days", "1", "-subj", "/CN=grpc-echo-bench CA"])
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(toFile: path("san.ext"), atomically: true, encoding: .utf8)
        func leaf(_ name: String) throws -> (String, String) {
            try openssl(["req"] + curve + ["-keyout", path("\(name).key"), "-out", path("\(name).csr"), "-subj", "/CN=\(name)"])
            try openssl(["x509", "-req", "-in", path("\(name).csr"), "-CA", authority, "-CAkey", path("ca.key"), "-CAcreateserial",
                         "-out", path("\(name).pem"), "-days", "1", "-extfile", path("san.ext")])
            return (path("\(name).pem"), path("\(name).key"))
        }
        let server = try leaf("server"), client = try leaf("client")
        self.authority = authority
        (serverCertificate, serverKey) = server
        (clientCertificate, clientKey) = client
    }
}
