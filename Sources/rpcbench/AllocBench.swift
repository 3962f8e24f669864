// `rpcbench allocs`: heap allocations per call on the hot paths, counted by the LD_PRELOAD
// counter Tests/CPeers/malloc_count.c (built by Tests/CPeers/build.sh). The TESTECHO server
// runs in this process. Server figures come from a blocking socket client on its own thread
// that sends a pre-encoded call record (only the xid changes, in place) and reads replies into
// a fixed buffer, so it allocates nothing per call and everything counted meanwhile is the
// server's. Client+server figures come from the Swift RPCClient calling sequentially in the
// same process; their difference is the client's share. Trusts only the server it starts.
// Beside each figure: thread wake-ups per call, the voluntary context switches of all the
// process's threads (getrusage) over the same calls, i.e. how often a call's work waited for
// a thread that had to be woken: the hops between Swift's pool and the event loops.

import ArgumentParser
import Foundation
import Logging
import NIOCore
import NIOPosix
import ONCRPC
import XDR
#if canImport(Glibc)
import Glibc
#endif

struct AllocBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allocs",
        abstract: "Heap allocations and thread wake-ups per call: the Swift server alone, and the Swift client + server pair.",
        discussion: """
            Needs the allocation counter preloaded:
              bash Tests/CPeers/build.sh /tmp/cpeers
              LD_PRELOAD=/tmp/cpeers/libmalloc_count.so .build/release/rpcbench allocs

            Counts calls to malloc, calloc, realloc and the aligned allocators (not free), in \
            the whole process, over sequential NULL and ECHO calls with AUTH_NONE and AUTH_SYS \
            on loopback TCP. Measure a release build; a debug build allocates more. \
            Thread wake-ups per call are the voluntary context switches of all of the process's \
            threads over the same calls (each time a thread blocked and had to be woken for the \
            call's work); the server figure includes the raw client's own wait for each reply. \
            `rpcbench run` runs this at its end when the counter is beside the C peers.
            """
    )

    @Option(help: "Calls counted per figure (after 1,000 warm-up calls).") var calls = 20_000
    @Option(help: "ECHO payload size in bytes.") var size = 16
    @Flag(help: "A short smoke run (2,000 calls per figure).") var quick = false
    @Option(help: ArgumentHelp("Check the method instead: count this process's allocations while its raw socket client calls ECHO on an external server at this local port (e.g. the C echo_server); expect 0.", valueName: "port"))
    var checkRawClient: Int?

    func run() async throws {
        let calls = quick ? 2_000 : self.calls
        guard calls > 0, size >= 0 else { throw ValidationError("--calls must be positive and --size not negative") }
        let count = try allocationCounter()
        let echoArguments = echoArgument(size: size)
        if let port = checkRawClient {
            let bytes = Self.encodedCall(procedure: TestEcho.echo, credential: .none, arguments: echoArguments)
            let own = try await onOwnThread { try RawClient(port: port, call: bytes).costPerCall(calls: calls, count: count) }
            print(String(format: "raw client alone, ECHO %d B, AUTH_NONE: %.2f allocations/call", size, own.allocations))
            return
        }
        var logger = Logger(label: "rpcbench.allocs")
        logger.logLevel = .critical
        // Separate loops for server and client, as when they are separate processes: a call
        // made from off the client's loop hops onto it, and that hop is part of its cost.
        let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = RPCServer(programs: [TestEcho.makeProgram()], group: serverGroup, logger: logger)
        let address = try await server.listenTCP()
        guard let port = address.port else { throw BenchFailure("the server has no TCP port") }

        // Fixed parameters (not the process's), so every run sends the same credential.
        let sys = AuthSysParameters(stamp: 1, machineName: "rpcbench", uid: 1000, gid: 1000, gids: [1000])
        let auths: [(String, OpaqueAuth, any RPCClientAuthenticator)] = [
            ("AUTH_NONE", .none, AuthNoneClient()),
            ("AUTH_SYS", OpaqueAuth(flavor: .sys, body: sys.xdrEncoded()), AuthSysClient(sys)),
        ]
        let procedures: [(String, UInt32, ByteBuffer)] = [("NULL", 0, ByteBuffer()), ("ECHO \(size) B", TestEcho.echo, echoArguments)]

        print("rpcbench allocs: heap allocations per call (malloc, calloc, realloc, aligned; frees not counted)")
        print("in-process TESTECHO server on one event loop thread, loopback TCP, sequential, \(calls) calls per figure")
        #if DEBUG
        print("(debug build: expect more than a release build)")
        #endif
        // The client's calls made from a task on Swift's pool (hopping to the client's loop
        // and back), then from a task on the client's loop (`RPCClient.taskExecutor`).
        for (authName, credential, authenticator) in auths {
            let client = RPCClient(transport: .tcp, address: address, program: TestEcho.program, version: TestEcho.version,
                                   authenticator: authenticator, group: clientGroup)
            for (procedureName, procedure, arguments) in procedures {
                let bytes = Self.encodedCall(procedure: procedure, credential: credential, arguments: arguments)
                let serverOnly = try await onOwnThread {
                    try RawClient(port: port, call: bytes).costPerCall(calls: calls, count: count)
                }
                @Sendable func clientAndServer() async throws -> CostPerCall {
                    for _ in 0..<1_000 { _ = try await client.call(procedure: procedure, arguments: arguments) }
                    let start = CostPerCall.Counts(count)
                    for _ in 0..<calls { _ = try await client.call(procedure: procedure, arguments: arguments) }
                    return CostPerCall(since: start, count, calls: calls)
                }
                let both = try await clientAndServer()
                let onLoop = try await withTaskExecutorPreference(client.taskExecutor) { try await clientAndServer() }
                let label = "\(procedureName), \(authName):".padding(toLength: 22, withPad: " ", startingAt: 0)
                print("  server,                      " + label + String(format: "%7.2f allocations/call                   %5.2f thread wake-ups/call",
                                                                                serverOnly.allocations, serverOnly.wakeUps))
                for (name, both) in [("client+server,               ", both), ("client on its loop + server, ", onLoop)] {
                    print("  " + name + label + String(format: "%7.2f allocations/call  (client: %5.2f)  %5.2f thread wake-ups/call",
                                                       both.allocations, both.allocations - serverOnly.allocations, both.wakeUps))
                }
            }
            await client.close()
        }
        await server.shutdown()
        try await clientGroup.shutdownGracefully()
        try await serverGroup.shutdownGracefully()
    }

    /// A TESTECHO call message, for RawClient to send again and again.
    private static func encodedCall(procedure: UInt32, credential: OpaqueAuth, arguments: ByteBuffer) -> [UInt8] {
        var record = ByteBuffer()
        RPCCall(xid: 0, program: TestEcho.program, version: TestEcho.version, procedure: procedure,
                credential: credential, arguments: arguments).encode(into: &record)
        return Array(record.readableBytesView)
    }

    /// The counter's read function, found in the running process (the preloaded library).
    private func allocationCounter() throws -> AllocationCounter {
        guard let counter = AllocationCounter.preloaded() else {
            throw BenchFailure("""
                no allocation counter in this process: build it with `bash Tests/CPeers/build.sh DIR` \
                and run with LD_PRELOAD=DIR/libmalloc_count.so
                """)
        }
        return counter
    }
}

/// A failure at run time, printed without the usage text that ValidationError brings (every
/// rpcbench subcommand).
struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Allocations and thread wake-ups per call over a run of calls.
struct CostPerCall: Sendable {
    var allocations: Double
    /// Voluntary context switches of every thread of the process, per call.
    var wakeUps: Double

    struct Counts {
        var allocations: UInt64
        var contextSwitches: Int

        init(_ count: AllocationCounter) {
            allocations = count()
            var usage = rusage()
            getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)  // on Linux, summed over all the process's threads
            contextSwitches = usage.ru_nvcsw
        }
    }

    init(since start: Counts, _ count: AllocationCounter, calls: Int) {
        let end = Counts(count)
        allocations = Double(end.allocations - start.allocations) / Double(calls)
        wakeUps = Double(end.contextSwitches - start.contextSwitches) / Double(calls)
    }
}

/// securerpc_malloc_count(): an atomic read, safe from any thread.
struct AllocationCounter: @unchecked Sendable {
    let read: @convention(c) () -> UInt64
    func callAsFunction() -> UInt64 { read() }

    /// The counter of Tests/CPeers/malloc_count.c when it is preloaded (LD_PRELOAD), else nil.
    static func preloaded() -> AllocationCounter? {
        guard let process = dlopen(nil, RTLD_NOW), let symbol = dlsym(process, "securerpc_malloc_count") else { return nil }
        return AllocationCounter(read: unsafeBitCast(symbol, to: (@convention(c) () -> UInt64).self))
    }
}

/// Runs blocking work on a thread of its own, off the concurrency pool and the event loops.
private func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// A blocking TCP client that allocates nothing per call: its one call record is encoded
/// up front and only the xid is rewritten in place; replies land in a fixed buffer. Socket
/// timeouts bound every read and write.
private final class RawClient {
    private let fd: Int32
    private let record: UnsafeMutableRawBufferPointer
    private let reply = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 4)
    private var xid: UInt32 = 0

    init(port: Int, call: [UInt8]) throws {
        record = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 + call.count, alignment: 4)
        record.storeBytes(of: (0x8000_0000 | UInt32(call.count)).bigEndian, as: UInt32.self)
        UnsafeMutableRawBufferPointer(rebasing: record[4...]).copyBytes(from: call)
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw BenchFailure("socket: \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0), one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw BenchFailure("connect to port \(port): \(String(cString: strerror(errno)))") }
    }

    deinit {
        close(fd)
        record.deallocate()
        reply.deallocate()
    }

    /// Warms up, then counts allocations and wake-ups in the whole process over `calls` calls.
    func costPerCall(calls: Int, count: AllocationCounter) throws -> CostPerCall {
        for _ in 0..<1_000 { try call() }
        let start = CostPerCall.Counts(count)
        for _ in 0..<calls { try call() }
        return CostPerCall(since: start, count, calls: calls)
    }

    private func call() throws {
        xid &+= 1
        record.storeBytes(of: xid.bigEndian, toByteOffset: 4, as: UInt32.self)
        try transfer(record.baseAddress!, record.count, write: true)
        try transfer(reply.baseAddress!, 4, write: false)
        let mark = UInt32(bigEndian: reply.loadUnaligned(as: UInt32.self))
        let length = Int(mark & 0x7fff_ffff)
        // The server answers in one fragment; anything else is a reply this client does not expect.
        guard mark & 0x8000_0000 != 0, length >= 24, length <= reply.count else { throw BenchFailure("unexpected record mark \(mark)") }
        try transfer(reply.baseAddress!, length, write: false)
        func word(_ offset: Int) -> UInt32 { UInt32(bigEndian: reply.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
        // xid, REPLY, MSG_ACCEPTED, verifier (flavor, length, body), then accept_stat SUCCESS.
        let status = 20 + (Int(word(16)) + 3) & ~3
        guard word(0) == xid, word(4) == 1, word(8) == 0, status + 4 <= length, word(status) == 0 else {
            throw BenchFailure("the server did not answer SUCCESS to xid \(xid)")
        }
    }

    /// Reads or writes exactly `count` bytes.
    private func transfer(_ base: UnsafeMutableRawPointer, _ count: Int, write writing: Bool) throws {
        var done = 0
        while done < count {
            let n = writing ? write(fd, base + done, count - done) : read(fd, base + done, count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw BenchFailure("\(writing ? "write" : "read"): \(n == 0 ? "connection closed" : String(cString: strerror(errno)))")
            }
            done += n
        }
    }
}
