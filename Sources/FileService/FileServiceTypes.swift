// The FILESVC wire types, written by hand to match filesvc.x exactly (until the rpcgen for
// Swift generates them). Every bound declared in the .x file is enforced on decode.

import NIOCore
import XDR

/// Numbers and limits of the FILESVC program.
public enum FileServiceProtocol {
    public static let program: UInt32 = 0x2000_0200
    public static let version: UInt32 = 1
    public static let maximumPath: UInt32 = 1024
    public static let maximumName: UInt32 = 255
    public static let maximumData: UInt32 = 65536
    public static let maximumEntries: UInt32 = 4096
    /// The port the example server uses unless told otherwise (TCP and UDP).
    public static let defaultPort = 20049

    public enum Procedure: UInt32 {
        case null = 0, stat = 1, read = 2, write = 3, create = 4, remove = 5, list = 6, mkdir = 7
    }
}

/// `fs_status`.
public enum FileStatus: Int32, XDREnum, Sendable, CustomStringConvertible {
    case ok = 0
    case noEntry = 2
    case io = 5
    case accessDenied = 13
    case exists = 17
    case notDirectory = 20
    case isDirectory = 21
    case invalid = 22
    case noSpace = 28
    case nameTooLong = 63
    case notEmpty = 66

    public var description: String {
        switch self {
        case .ok: return "ok"
        case .noEntry: return "no such file or directory"
        case .io: return "I/O error"
        case .accessDenied: return "permission denied"
        case .exists: return "file exists"
        case .notDirectory: return "not a directory"
        case .isDirectory: return "is a directory"
        case .invalid: return "invalid argument"
        case .noSpace: return "no space left"
        case .nameTooLong: return "name too long"
        case .notEmpty: return "directory not empty"
        }
    }
}

/// `fs_type`.
public enum FileType: Int32, XDREnum, Sendable {
    case regular = 1
    case directory = 2
}

/// `fs_path` (string<1024>).
public struct FilePath: XDRCodable, Sendable, Hashable, ExpressibleByStringLiteral {
    public var value: String
    public init(_ value: String) { self.value = value }
    public init(stringLiteral value: String) { self.value = value }
    public init(xdr buffer: inout ByteBuffer) throws(XDRError) {
        value = try buffer.readXDRString(maxLength: FileServiceProtocol.maximumPath)
    }
    public func encode(into buffer: inout ByteBuffer) { buffer.writeXDR(value) }
}

/// `fs_attr`.
public struct FileAttributes: XDRCodable, Sendable, Equatable {
    public var type: FileType
    public var size: UInt64
    public var mode: UInt32
    public var owner: String
    public var modified: Int64

    public init(type: FileType, size: UInt64, mode: UInt32, owner: String, modified: Int64) {
        self.type = type
        self.size = size
        self.mode = mode
        self.owner = owner
        self.modified = modified
    }

    public init(xdr buffer: inout ByteBuffer) throws(XDRError) {
        type = try FileType(xdr: &buffer)
        size = try buffer.readXDRUInt64()
        mode = try buffer.readXDRUInt32()
        owner = try buffer.readXDRString(maxLength: FileServiceProtocol.maximumName)
        modified = try buffer.readXDRInt64()
    }

    public func encode(into buffer: inout ByteBuffer) {
        type.encode(into: &buffer)
        buffer.writeXDR(size)
        buffer.writeXDR(mode)
        buffer.writeXDR(owner)
        buffer.writeXDR(modified)
    }
}

/// A union on `fs_status` whose OK arm carries `Value` and every other arm is void
/// (`fs_stat_res`, `fs_read_res`, `fs_write_res`, `fs_list_res`).
public enum FileResult<Value: XDRCodable & Sendable>: XDRCodable, Sendable {
    case ok(Value)
    case failed(FileStatus)

    public init(xdr buffer: inout ByteBuffer) throws(XDRError) {
        let status = try FileStatus(xdr: &buffer)
        if status == .ok {
            self = .ok(try Value(xdr: &buffer))
        } else {
            self = .failed(status)
        }
    }

    public func encode(into buffer: inout ByteBuffer) {
        switch self {
        case let .ok(value):
            FileStatus.ok.encode(into: &buffer)
            value.encode(into: &buffer)
        case let .failed(status):
            precondition(status != .ok, "a failed result needs a failure status")
            status.encode(into: &buffer)
        }
    }
}

/// `fs_read_args`.
public struct ReadArguments: XDRCodable, Sendable {
    public var path: FilePath
    public var offset: UInt64
    public var count: UInt32

    public init(path: FilePath, offset: UInt64, count: UInt32) {
        self.path = path
        self.offset = offset
        self.count = count
    }

    public init(xdr buffer: inout ByteBuffer) throws(XDRError) {
        path = try FilePath(xdr: &buffer)
        offset = try buffer.readXDRUInt64()
        count = try buffer.readXDRUInt32()
    }

    public func encode(into buffer: inout ByteBuffer) {
        path.encode(into: &buffer)
        buffer.writeXDR(offset)
        buffer.writeXDR(count)
    }
}

/// `fs_read_ok`.
public struct ReadResult: XDRCodable, Sendable {
    public var data: ByteBuffer
    public var eof: Bool

    public init(data: ByteBuffer, eof: Bool) {
        self.data = data
        self.eof = eof
    }

    public init(xdr buffer: inout ByteBuffer) throws(XDRError) {
        data = try buffer.readXDROpaque(maxLength: FileServiceProtocol.maximumData)
        eof = try buffer.readXDRBool()
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeXDROpaque(data)
        buffer.writeXDR(eof)
    }
}

/// `fs_write_args`.
public struct WriteArguments: XDRCodable, Sendable {
    public var path: FilePath
    public var offset: UInt64
    public var data: ByteBuffer
    /// Cut the file to `offset + data.count` after writing.
    public var truncate: Bool

    public init(path: FilePath, offset: UInt64, data: ByteBuffer, truncate: Bool) {
        self.path = path
        self.offset = offset
        self.data = data
        self.truncate = truncate
    }

    public init(xdr buffer: inout ByteBuffer) throws(XDRError) {
        path = try FilePath(xdr: &buffer)
        offset = try buffer.readXDRUInt64()
        data = try buffer.readXDROpaque(maxLength: FileServiceProtocol.maximumData)
        truncate = try buffer.readXDRBool()
    }

    public func encode(into buffer: inout ByteBuffer) {
        path.encode(into: &buffer)
        buffer.writeXDR(offset)
        buffer.writeXDROpaque(data)
        buffer.writeXDR(truncate)
    }
}

/// `fs_create_args`.
public struct CreateArguments: XDRCodable, Sendable {
    public var path: FilePath
    /// Fail with `exists` when the file is already there.
    public var exclusive: Bool

    public init(path: FilePath, exclusive: Bool) {
        self.path = path
        self.exclusive = exclusive
    }

    public init(xdr buffer: inout ByteBuffer) throws(XDRError) {
        path = try FilePath(xdr: &buffer)
        exclusive = try buffer.readXDRBool()
    }

    public func encode(into buffer: inout ByteBuffer) {
        path.encode(into: &buffer)
        buffer.writeXDR(exclusive)
    }
}

/// The OK arm of `fs_list_res`: `fs_name names<4096>`.
public struct DirectoryListing: XDRCodable, Sendable, Equatable {
    public var names: [String]

    public init(names: [String]) { self.names = names }

    public init(xdr buffer: inout ByteBuffer) throws(XDRError) {
        names = try buffer.readXDRArray(maxCount: FileServiceProtocol.maximumEntries) {
            (buffer: inout ByteBuffer) throws(XDRError) in try buffer.readXDRString(maxLength: FileServiceProtocol.maximumName)
        }
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeXDRArray(names) { buffer, name in buffer.writeXDR(name) }
    }
}
