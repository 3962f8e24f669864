// A typed async client for FILESVC on top of RPCClient: each failure status becomes a
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

/// Client for the example file service.
///
/// ```swift
/// let files = try FileServiceClient(host: "127.0.0.1", port: FileServiceProtocol.defaultPort)
/// try await files.create("/notes.txt")
/// try await files.writeAll("/notes.txt", contents: ByteBuffer(string: "hello"))
/// let text = try await files.readAll("/notes.txt")
/// ```
public final class FileServiceClient: Sendable {
    public let rpc: RPCClient

    public init(rpc: RPCClient) {
        self.rpc = rpc
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

    public func stat(_ path: String) async throws -> FileAttributes {
        try unwrap(await rpc.call(FileServiceProtocol.Procedure.stat.rawValue, FilePath(path), returning: FileResult<FileAttributes>.self), path)
    }

    public func read(_ path: String, offset: UInt64, count: UInt32 = FileServiceProtocol.maximumData) async throws -> ReadResult {
        let args = ReadArguments(path: FilePath(path), offset: offset, count: count)
        return try unwrap(await rpc.call(FileServiceProtocol.Procedure.read.rawValue, args, returning: FileResult<ReadResult>.self), path)
    }

    @discardableResult
    public func write(_ path: String, offset: UInt64, data: ByteBuffer, truncate: Bool = false) async throws -> UInt32 {
        let args = WriteArguments(path: FilePath(path), offset: offset, data: data, truncate: truncate)
        return try unwrap(await rpc.call(FileServiceProtocol.Procedure.write.rawValue, args, returning: FileResult<UInt32>.self), path)
    }

    public func create(_ path: String, exclusive: Bool = false) async throws {
        try check(await rpc.call(FileServiceProtocol.Procedure.create.rawValue, CreateArguments(path: FilePath(path), exclusive: exclusive), returning: FileStatus.self), path)
    }

    public func remove(_ path: String) async throws {
        try check(await rpc.call(FileServiceProtocol.Procedure.remove.rawValue, FilePath(path), returning: FileStatus.self), path)
    }

    public func makeDirectory(_ path: String) async throws {
        try check(await rpc.call(FileServiceProtocol.Procedure.mkdir.rawValue, FilePath(path), returning: FileStatus.self), path)
    }

    public func list(_ path: String) async throws -> [String] {
        try unwrap(await rpc.call(FileServiceProtocol.Procedure.list.rawValue, FilePath(path), returning: FileResult<DirectoryListing>.self), path).names
    }

    /// Reads a whole file in chunks of the protocol's maximum.
    public func readAll(_ path: String) async throws -> ByteBuffer {
        var contents = ByteBuffer()
        var offset: UInt64 = 0
        while true {
            var chunk = try await read(path, offset: offset)
            let count = chunk.data.readableBytes
            offset += UInt64(count)
            contents.writeBuffer(&chunk.data)
            if chunk.eof || count == 0 { break }
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

    private func unwrap<Value>(_ result: FileResult<Value>, _ path: String) throws -> Value {
        switch result {
        case let .ok(value): return value
        case let .failed(status): throw FileServiceError(status: status, path: path)
        }
    }

    private func check(_ status: FileStatus, _ path: String) throws {
        if status != .ok { throw FileServiceError(status: status, path: path) }
    }
}
