// A typed async client for FILESVC on top of the generated FilesvcV1Client: each failure status becomes a
// FileServiceError that names the path and says what went wrong.

import NIOCore
import ONCRPC
import XDR

/// A file operation the server refused.
public struct FileServiceError: Error, Equatable, Sendable, CustomStringConvertible {
    public var status: FileStatus
    public var path: String

    public init(status: FileStatus, path: String) {
        self.status = status
        self.path = path
    }

    public var description: String { "\(path): \(status)" }
}

/// Client for the example file service: the generated `FilesvcV1Client` with each failure
/// status turned into a `FileServiceError` and whole-file helpers.
///
/// ```swift
/// let files = try FileServiceClient(host: "127.0.0.1", port: FileServiceProtocol.defaultPort)
/// try await files.create("/notes.txt")
/// try await files.writeAll("/notes.txt", contents: ByteBuffer(string: "hello"))
/// let text = try await files.readAll("/notes.txt")
/// ```
public final class FileServiceClient: Sendable {
    public let rpc: RPCClient
    /// The typed client generated from filesvc.x.
    public let generated: FilesvcV1Client

    public init(rpc: RPCClient) {
        self.rpc = rpc
        self.generated = FilesvcV1Client(rpc)
    }

    public convenience init(
        host: String, port: Int = FileServiceProtocol.defaultPort, transport: RPCTransport = .tcp,
        authenticator: any RPCClientAuthenticator = AuthSysClient(), configuration: RPCClient.Configuration = .init()
    ) throws {
        self.init(rpc: try RPCClient(
            transport: transport, host: host, port: port, program: FileServiceProtocol.program,
            version: FileServiceProtocol.version, authenticator: authenticator, configuration: configuration
        ))
    }

    public func close() async { await rpc.close() }

    public func ping() async throws { try await rpc.ping() }

    public func stat(_ path: String) async throws -> FsAttr {
        switch try await generated.stat(path) {
        case let .fsOk(attributes): return attributes
        case let .default(status): throw FileServiceError(status: status, path: path)
        }
    }

    public func read(_ path: String, offset: UInt64, count: UInt32 = FileServiceProtocol.maximumData) async throws -> FsReadOk {
        switch try await generated.read(FsReadArgs(path: path, offset: offset, count: count)) {
        case let .fsOk(result): return result
        case let .default(status): throw FileServiceError(status: status, path: path)
        }
    }

    @discardableResult
    public func write(_ path: String, offset: UInt64, data: ByteBuffer, truncate: Bool = false) async throws -> UInt32 {
        let args = FsWriteArgs(path: path, offset: offset, data: Array(data.readableBytesView), truncate: truncate)
        switch try await generated.write(args) {
        case let .fsOk(count): return count
        case let .default(status): throw FileServiceError(status: status, path: path)
        }
    }

    public func create(_ path: String, exclusive: Bool = false) async throws {
        try check(await generated.create(FsCreateArgs(path: path, exclusive: exclusive)), path)
    }

    public func remove(_ path: String) async throws {
        try check(await generated.remove(path), path)
    }

    public func makeDirectory(_ path: String) async throws {
        try check(await generated.mkdir(path), path)
    }

    public func list(_ path: String) async throws -> [String] {
        switch try await generated.list(path) {
        case let .fsOk(names): return names
        case let .default(status): throw FileServiceError(status: status, path: path)
        }
    }

    /// Reads a whole file in chunks of the protocol's maximum.
    public func readAll(_ path: String) async throws -> ByteBuffer {
        var contents = ByteBuffer()
        var offset: UInt64 = 0
        while true {
            let chunk = try await read(path, offset: offset)
            offset += UInt64(chunk.data.count)
            contents.writeBytes(chunk.data)
            if chunk.eof || chunk.data.isEmpty { break }
        }
        return contents
    }

    /// Replaces a file's contents (creating it if needed), in chunks.
    public func writeAll(_ path: String, contents: ByteBuffer) async throws {
        try await create(path)
        var remaining = contents
        var offset: UInt64 = 0
        let chunkSize = Int(FileServiceProtocol.maximumData)
        repeat {
            let chunk = remaining.readSlice(length: min(chunkSize, remaining.readableBytes))!
            let written = try await write(path, offset: offset, data: chunk, truncate: remaining.readableBytes == 0)
            offset += UInt64(written)
        } while remaining.readableBytes > 0
    }

    private func check(_ status: FsStatus, _ path: String) throws {
        if status != .fsOk { throw FileServiceError(status: status, path: path) }
    }
}
