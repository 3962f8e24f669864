// opaque_auth (RFC 5531 §8.2): a flavor and at most 400 bytes of body. The bound is
// checked from the length word before the body is sliced.

import NIOCore
import XDR

/// A credential or verifier as carried in an RPC message.
public struct OpaqueAuth: Hashable, Sendable {
    /// The largest body RFC 5531 allows (MAX_AUTH_BYTES).
    public static let maximumBodyLength: UInt32 = 400

    public var flavor: AuthFlavor
    /// The flavor-specific body, at most ``maximumBodyLength`` bytes.
    public var body: ByteBuffer

    public init(flavor: AuthFlavor, body: ByteBuffer = ByteBuffer()) {
        precondition(body.readableBytes <= Int(Self.maximumBodyLength), "opaque_auth body over 400 bytes")
        self.flavor = flavor
        self.body = body
    }

    /// AUTH_NONE with an empty body.
    public static let none = OpaqueAuth(flavor: .none)

    /// Bytes this value occupies on the wire.
    public var encodedSize: Int { 4 + xdrOpaqueSize(body.readableBytes) }
}

extension OpaqueAuth: XDRCodable {
    public init(xdr buffer: inout ByteBuffer) throws(XDRError) {
        let flavor = AuthFlavor(rawValue: try buffer.readXDRUInt32())
        let body = try buffer.readXDROpaque(maxLength: Self.maximumBodyLength)
        self.flavor = flavor
        self.body = body
    }

    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeXDR(flavor.rawValue)
        buffer.writeXDROpaque(body)
    }
}
