// The FILESVC program (FilesvcV1Service, generated from filesvc.x): procedures that map onto a FileStore. Handlers run their blocking
// file I/O on NIO's thread pool, never on an event loop. Every call is logged with the
// caller's identity; `authorize` is the one place where access decisions will be made
// once callers are proven (AUTH_DH, RPCSEC_GSS).

import Logging
import NIOCore
import NIOPosix
import ONCRPC
import XDR

/// Serves a directory tree as the FILESVC program.
///
/// ```swift
/// let files = try FileServiceServer(root: "/srv/files", logger: logger)
/// let server = RPCServer(programs: [files.program])
/// ```
public final class FileServiceServer: FilesvcV1Service {
    /// What a caller is trying to do.
    public enum Operation: String, Sendable {
        case stat, read, write, create, remove, list, mkdir
    }

    private let store: FileStore
    private let logger: Logger
    private let threadPool: NIOThreadPool

    public init(root: String, logger: Logger = Logger(label: "filesvc"), threadPool: NIOThreadPool = .singleton) throws {
        do {
            self.store = try FileStore(root: root)
        } catch let error as FileStoreError {
            throw FileServiceError(status: error.status, path: root)
        }
        self.logger = logger
        self.threadPool = threadPool
    }

    /// The identity recorded as a file's owner and used in decisions: the proven netname
    /// when there is one, else `unix.UID` from AUTH_SYS, else `anonymous`.
    public static func identity(of caller: RPCCaller) -> String {
        if let netname = caller.netname { return netname }
        if let uid = caller.uid { return "unix.\(uid)" }
        return "anonymous"
    }

    /// Decides whether `caller` may perform `operation` on a file owned by `owner`: the one
    /// place access is decided.
    ///
    /// A proven caller (AUTH_DH, RPCSEC_GSS) may read, write or remove only files it owns
    /// (or unowned ones); listing and stat are open. An unproven caller (AUTH_SYS states its
    /// own uid) cannot be held to ownership, so a mismatch is only logged — run the server
    /// with `--require-auth dh` to turn unproven callers away altogether.
    func authorize(_ caller: RPCCaller, _ operation: Operation, path: String, owner: String?) -> FileStatus? {
        let who = Self.identity(of: caller)
        guard let owner, owner != "anonymous", owner != who, operation != .list, operation != .stat else { return nil }
        if caller.isVerified {
            logger.notice("refused: not the owner", metadata: [
                "caller": "\(who)", "owner": "\(owner)", "operation": "\(operation.rawValue)", "path": "\(logSafe(path))",
            ])
            return .fsAcces
        }
        logger.notice("access by someone other than the owner", metadata: [
            "caller": "\(who)", "owner": "\(owner)", "operation": "\(operation.rawValue)", "path": "\(logSafe(path))",
        ])
        return nil
    }

    /// The program to register with an `RPCServer`, open to every flavor the server accepts.
    public var program: RPCProgram { rpcProgram(policy: AllowAnyFlavor()) }

    /// The program with an authorization policy, e.g. `RequireFlavors([.dh])`.
    public func program(policy: any RPCAuthorizationPolicy) -> RPCProgram { rpcProgram(policy: policy) }

    // MARK: FilesvcV1Service (generated from filesvc.x)

    public func stat(_ path: FsPath, request: RPCRequest) async throws -> FsStatRes {
        try await run(.stat, path, request) { store in
            .fsOk(try store.attributes(path))
        } failed: { .default(discriminant: $0) }
    }

    public func read(_ args: FsReadArgs, request: RPCRequest) async throws -> FsReadRes {
        try await run(.read, args.path, request) { store in
            .fsOk(try store.read(args.path, offset: args.offset, count: args.count))
        } failed: { .default(discriminant: $0) }
    }

    public func write(_ args: FsWriteArgs, request: RPCRequest) async throws -> FsWriteRes {
        try await run(.write, args.path, request, detail: "\(args.data.count) bytes at \(args.offset)") { store in
            .fsOk(try store.write(args.path, offset: args.offset, data: args.data, truncate: args.truncate))
        } failed: { .default(discriminant: $0) }
    }

    public func create(_ args: FsCreateArgs, request: RPCRequest) async throws -> FsStatus {
        try await run(.create, args.path, request) { store in
            try store.create(args.path, exclusive: args.exclusive, owner: Self.identity(of: request.caller))
            return .fsOk
        } failed: { $0 }
    }

    public func remove(_ path: FsPath, request: RPCRequest) async throws -> FsStatus {
        try await run(.remove, path, request) { store in
            try store.remove(path)
            return .fsOk
        } failed: { $0 }
    }

    public func list(_ path: FsPath, request: RPCRequest) async throws -> FsListRes {
        try await run(.list, path, request) { store in
            .fsOk(try store.list(path))
        } failed: { .default(discriminant: $0) }
    }

    public func mkdir(_ path: FsPath, request: RPCRequest) async throws -> FsStatus {
        try await run(.mkdir, path, request) { store in
            try store.makeDirectory(path, owner: Self.identity(of: request.caller))
            return .fsOk
        } failed: { $0 }
    }

    /// Logs the call, checks authorization and runs `body` on the thread pool; store
    /// failures become the procedure's status result.
    private func run<Result: XDREncodable & Sendable>(
        _ operation: Operation,
        _ path: String,
        _ request: RPCRequest,
        detail: String? = nil,
        _ body: @escaping @Sendable (FileStore) throws -> Result,
        failed: @escaping @Sendable (FsStatus) -> Result
    ) async throws -> Result {
        let store = self.store
        let outcome: Result = try await threadPool.runIfActive {
            do {
                let owner = store.owner(of: path)
                if let denied = self.authorize(request.caller, operation, path: path, owner: owner) {
                    return failed(denied)
                }
                return try body(store)
            } catch let error as FileStoreError {
                return failed(error.status)
            } catch {
                return failed(.fsIo)
            }
        }
        var metadata: Logger.Metadata = [
            "caller": "\(Self.identity(of: request.caller))", "operation": "\(operation.rawValue)", "path": "\(logSafe(path))",
            "transport": "\(request.context.transport.rawValue)",
        ]
        if let detail { metadata["detail"] = "\(detail)" }
        if let mechanism = request.caller.mechanism { metadata["via"] = "\(mechanism)" }
        if let status = (outcome as? FsStatus) ?? Self.status(of: outcome), status != .fsOk {
            metadata["status"] = "\(status)"
        }
        logger.info("call", metadata: metadata)
        return outcome
    }

    private static func status(of result: some XDREncodable) -> FileStatus? {
        var buffer = ByteBuffer()
        result.encode(into: &buffer)
        return buffer.readInteger(as: Int32.self).flatMap(FsStatus.init(rawValue:))
    }
}
