// The RPCSEC_GSS credential (RFC 2203 §5): its version word, then rpc_gss_cred_vers_1 from
// rpcsec_gss.x. Decoding distinguishes "another version" (AUTH_REJECTEDCRED, RFC 2203
// erratum 4067) from "not a credential at all" (AUTH_BADCRED).

import NIOCore
import ONCRPC
import XDR

/// A decoded RPCSEC_GSS version 1 credential.
public struct GSSCredential: Sendable, Equatable {
    public var procedure: RpcGssProc
    public var sequence: UInt32
    public var service: GSSService
    public var handle: [UInt8]

    public init(procedure: RpcGssProc, sequence: UInt32, service: GSSService, handle: [UInt8]) {
        self.procedure = procedure
        self.sequence = sequence
        self.service = service
        self.handle = handle
    }

    public enum DecodeError: Error, Equatable {
        case unsupportedVersion(UInt32)
        case malformed
    }

    public static func decode(_ credential: OpaqueAuth) throws(DecodeError) -> GSSCredential {
        var body = credential.body
        guard let version = body.readInteger(as: UInt32.self) else { throw .malformed }
        guard version == UInt32(RpcsecGssConstants.rpcsecGssVers1) else { throw .unsupportedVersion(version) }
        guard let fields = try? RpcGssCredVers1(xdr: &body), body.readableBytes == 0 else { throw .malformed }
        return GSSCredential(procedure: fields.gssProc, sequence: fields.seqNum, service: GSSService(wire: fields.service), handle: fields.handle)
    }

    public var opaqueAuth: OpaqueAuth {
        var body = ByteBuffer()
        body.reserveCapacity(24 + handle.count)
        body.writeInteger(UInt32(RpcsecGssConstants.rpcsecGssVers1))
        RpcGssCredVers1(gssProc: procedure, seqNum: sequence, service: service.wire, handle: handle).encode(into: &body)
        return OpaqueAuth(flavor: .rpcsecGSS, body: body)
    }
}
