// The FILESVC program: procedures that map onto a FileStore. Handlers run their blocking
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
public final class FileServiceServer: Sendable {
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
            return .accessDenied
        }
        logger.notice("access by someone other than the owner", metadata: [
            "caller": "\(who)", "owner": "\(owner)", "operation": "\(operation.rawValue)", "path": "\(logSafe(path))",
        ])
        return nil
    }

    /// The program to register with an `RPCServer`, open to every flavor the server accepts.
    public var program: RPCProgram { program(policy: AllowAnyFlavor()) }

    /// The program with an authorization policy, e.g. `RequireFlavors([.dh])`.
    public func program(policy: any RPCAuthorizationPolicy) -> RPCProgram {
        var program = RPCProgram(number: FileServiceProtocol.program, version: FileServiceProtocol.version, policy: policy)
        program.addProcedure(FileServiceProtocol.Procedure.stat.rawValue) { (path: FilePath, request) in
            try await self.run(.stat, path.value, request) { store in
                FileResult<FileAttributes>.ok(try store.attributes(path.value))
            } failed: { FileResult<FileAttributes>.failed($0) }
        }
        program.addProcedure(FileServiceProtocol.Procedure.read.rawValue) { (args: ReadArguments, request) in
            try await self.run(.read, args.path.value, request) { store in
                FileResult<ReadResult>.ok(try store.read(args.path.value, offset: args.offset, count: args.count))
            } failed: { FileResult<ReadResult>.failed($0) }
        }
        program.addProcedure(FileServiceProtocol.Procedure.write.rawValue) { (args: WriteArguments, request) in
            try await self.run(.write, args.path.value, request, detail: "\(args.data.readableBytes) bytes at \(args.offset)") { store in
                FileResult<UInt32>.ok(try store.write(args.path.value, offset: args.offset, data: args.data, truncate: args.truncate))
            } failed: { FileResult<UInt32>.failed($0) }
        }
        program.addProcedure(FileServiceProtocol.Procedure.create.rawValue) { (args: CreateArguments, request) in
            try await self.run(.create, args.path.value, request) { store in
                try store.create(args.path.value, exclusive: args.exclusive, owner: Self.identity(of: request.caller))
                return FileStatus.ok
            } failed: { $0 }
        }
        program.addProcedure(FileServiceProtocol.Procedure.remove.rawValue) { (path: FilePath, request) in
            try await self.run(.remove, path.value, request) { store in
                try store.remove(path.value)
                return FileStatus.ok
            } failed: { $0 }
        }
        program.addProcedure(FileServiceProtocol.Procedure.list.rawValue) { (path: FilePath, request) in
            try await self.run(.list, path.value, request) { store in
                FileResult<DirectoryListing>.ok(DirectoryListing(names: try store.list(path.value)))
            } failed: { FileResult<DirectoryListing>.failed($0) }
        }
        program.addProcedure(FileServiceProtocol.Procedure.mkdir.rawValue) { (path: FilePath, request) in
            try await self.run(.mkdir, path.value, request) { store in
                try store.makeDirectory(path.value, owner: Self.identity(of: request.caller))
                return FileStatus.ok
            } failed: { $0 }
        }
        return program
    }

    /// Logs the call, checks authorization and runs `body` on the thread pool; store
    /// failures become the procedure's status result.
    private func run<Result: XDREncodable & Sendable>(
        _ operation: Operation,
        _ path: String,
        _ request: RPCRequest,
        detail: String? = nil,
        _ body: @escaping @Sendable (FileStore) throws -> Result,
        failed: @escaping @Sendable (FileStatus) -> Result
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
                return failed(.io)
            }
        }
        var metadata: Logger.Metadata = [
            "caller": "\(Self.identity(of: request.caller))", "operation": "\(operation.rawValue)", "path": "\(logSafe(path))",
            "transport": "\(request.context.transport.rawValue)",
        ]
        if let detail { metadata["detail"] = "\(detail)" }
        if let mechanism = request.caller.mechanism { metadata["via"] = "\(mechanism)" }
        if let status = (outcome as? FileStatus) ?? Self.status(of: outcome), status != .ok {
            metadata["status"] = "\(status)"
        }
        logger.info("call", metadata: metadata)
        return outcome
    }

    private static func status(of result: some XDREncodable) -> FileStatus? {
        var buffer = ByteBuffer()
        result.encode(into: &buffer)
        return buffer.readInteger(as: Int32.self).flatMap(FileStatus.init(rawValue:))
    }
}
