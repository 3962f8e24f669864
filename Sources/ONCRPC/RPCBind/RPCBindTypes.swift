// Wire types of the portmapper (version 2) and rpcbind (versions 3 and 4), RFC 1833.
// Lists arrive as optional-data chains from a daemon we do not control, so they are
// decoded iteratively and with a bound.

import NIOCore
import XDR

/// Well-known numbers of the portmapper / rpcbind service.
public enum RPCBindProtocol {
    public static let program: UInt32 = 100_000
    public static let port = 111
    /// Most registrations a DUMP reply may list before we call it garbage.
    public static let maximumListEntries = 65_536
    /// Bound on netid, universal address and owner strings (generous; rpcbind's own are short).
    public static let maximumStringLength: UInt32 = 1024

    /// Procedure numbers for versions 3 and 4.
    public enum Procedure: UInt32 {
        case null = 0, set = 1, unset = 2, getAddress = 3, dump = 4, callIt = 5, getTime = 6
        case universalToTransport = 7, transportToUniversal = 8
        case getVersionAddress = 9, indirect = 10, getAddressList = 11, getStatistics = 12
    }

    /// Procedure numbers for version 2 (portmapper).
    public enum PortmapProcedure: UInt32 {
        case null = 0, set = 1, unset = 2, getPort = 3, dump = 4, callIt = 5
    }
}

/// A version 3/4 registration (`rpcb`): program, version, transport, universal address, owner.
public struct RPCBindMapping: XDRCodable, Sendable, Hashable {
    public var program: UInt32
    public var version: UInt32
    /// Transport name: `tcp`, `udp`, `tcp6`, `udp6`, `local`/`unix`.
    public var netid: String
    /// Universal address (see ``UniversalAddress``); empty in queries.
    public var address: String
    /// Owner of the registration (rpcbind fills in the uid for local callers).
    public var owner: String

    public init(program: UInt32, version: UInt32, netid: String, address: String = "", owner: String = "") {
        self.program = program
        self.version = version
        self.netid = netid
        self.address = address
        self.owner = owner
    }

    public init(xdr buffer: inout ByteBuffer) throws(XDRError) {
        program = try buffer.readXDRUInt32()
        version = try buffer.readXDRUInt32()
        netid = try buffer.readXDRString(maxLength: RPCBindProtocol.maximumStringLength)
        address = try buffer.readXDRString(maxLength: RPCBindProtocol.maximumStringLength)
        owner = try buffer.readXDRString(maxLength: RPCBindProtocol.maximumStringLength)
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeXDR(program)
        buffer.writeXDR(version)
        buffer.writeXDR(netid)
        buffer.writeXDR(address)
        buffer.writeXDR(owner)
    }
}

/// A version 2 (portmapper) registration.
public struct PortMapping: XDRCodable, Sendable, Hashable {
    /// IP protocol numbers used by the portmapper.
    public enum IPProtocol: UInt32, Sendable {
        case tcp = 6
        case udp = 17
    }

    public var program: UInt32
    public var version: UInt32
    /// `IPProtocol` raw value (kept raw: a daemon may list others).
    public var protocolNumber: UInt32
    public var port: UInt32

    public init(program: UInt32, version: UInt32, protocol: IPProtocol, port: UInt32) {
        self.program = program
        self.version = version
        self.protocolNumber = `protocol`.rawValue
        self.port = port
    }

    public init(xdr buffer: inout ByteBuffer) throws(XDRError) {
        program = try buffer.readXDRUInt32()
        version = try buffer.readXDRUInt32()
        protocolNumber = try buffer.readXDRUInt32()
        port = try buffer.readXDRUInt32()
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeXDR(program)
        buffer.writeXDR(version)
        buffer.writeXDR(protocolNumber)
        buffer.writeXDR(port)
    }
}

/// A DUMP reply of version 3/4: a chain of `rpcb` entries.
struct RPCBindMappingList: XDRDecodable {
    var entries: [RPCBindMapping]
    init(xdr buffer: inout ByteBuffer) throws(XDRError) {
        entries = try buffer.readXDRLinkedList(maxCount: RPCBindProtocol.maximumListEntries) {
            (buffer: inout ByteBuffer) throws(XDRError) in try RPCBindMapping(xdr: &buffer)
        }
    }
}

/// A DUMP reply of version 2: a chain of `pmap` entries.
struct PortMappingList: XDRDecodable {
    var entries: [PortMapping]
    init(xdr buffer: inout ByteBuffer) throws(XDRError) {
        entries = try buffer.readXDRLinkedList(maxCount: RPCBindProtocol.maximumListEntries) {
            (buffer: inout ByteBuffer) throws(XDRError) in try PortMapping(xdr: &buffer)
        }
    }
}

/// An XDR string argument or result without a declared bound other than rpcbind's.
struct RPCBindString: XDRCodable {
    var value: String
    init(_ value: String) { self.value = value }
    init(xdr buffer: inout ByteBuffer) throws(XDRError) {
        value = try buffer.readXDRString(maxLength: RPCBindProtocol.maximumStringLength)
    }
    func encode(into buffer: inout ByteBuffer) { buffer.writeXDR(value) }
}
