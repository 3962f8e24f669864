// RFC 5531 CALL and REPLY messages: typed values and their encoders/decoders. Decoding
// reads untrusted bytes and reports failures as `RPCMessageError`, which still carries
// the xid when it could be read so the server can answer RPC_MISMATCH or AUTH_BADCRED.

import NIOCore
import XDR

/// A decoded CALL message.
public struct RPCCall: Sendable {
    public var xid: UInt32
    public var program: UInt32
    public var version: UInt32
    public var procedure: UInt32
    public var credential: OpaqueAuth
    public var verifier: OpaqueAuth
    /// The procedure's arguments (for RPCSEC_GSS integrity/privacy, the wrapped body).
    public var arguments: ByteBuffer
    /// The received bytes from the xid through the end of the credential, which the
    /// RPCSEC_GSS header checksum covers. Empty for calls built locally.
    public var headerBytes: ByteBuffer

    public init(
        xid: UInt32, program: UInt32, version: UInt32, procedure: UInt32,
        credential: OpaqueAuth = .none, verifier: OpaqueAuth = .none,
        arguments: ByteBuffer = ByteBuffer(), headerBytes: ByteBuffer = ByteBuffer()
    ) {
        self.xid = xid
        self.program = program
        self.version = version
        self.procedure = procedure
        self.credential = credential
        self.verifier = verifier
        self.arguments = arguments
        self.headerBytes = headerBytes
    }
}

/// The body of an accepted reply.
public enum AcceptedReplyStatus: Sendable, Equatable {
    /// The call ran; these are its XDR-encoded results.
    case success(ByteBuffer)
    case programUnavailable
    /// The program exists but not this version; the server supports `low...high`.
    case programMismatch(low: UInt32, high: UInt32)
    case procedureUnavailable
    case garbageArguments
    case systemError

    public var code: AcceptStatusCode {
        switch self {
        case .success: return .success
        case .programUnavailable: return .programUnavailable
        case .programMismatch: return .programMismatch
        case .procedureUnavailable: return .procedureUnavailable
        case .garbageArguments: return .garbageArguments
        case .systemError: return .systemError
        }
    }
}

/// The body of a denied reply. Denied replies carry no verifier.
public enum RejectedReply: Sendable, Equatable {
    /// The server speaks RPC versions `low...high` only.
    case rpcMismatch(low: UInt32, high: UInt32)
    case authError(AuthStatus)
}

/// A decoded REPLY message.
public struct RPCReply: Sendable, Equatable {
    public enum Status: Sendable, Equatable {
        case accepted(verifier: OpaqueAuth, AcceptedReplyStatus)
        case denied(RejectedReply)
    }

    public var xid: UInt32
    public var status: Status

    public init(xid: UInt32, status: Status) {
        self.xid = xid
        self.status = status
    }
}

/// Why an incoming message could not be used.
public enum RPCMessageError: Error, Equatable, Sendable {
    /// Too short or malformed to even read an xid and message type: drop it.
    case unreadable(XDRError)
    /// A REPLY arrived where a CALL was expected (or the reverse).
    case unexpectedMessageType(xid: UInt32, type: UInt32)
    /// A CALL with an RPC version other than 2.
    case rpcVersionMismatch(xid: UInt32, version: UInt32)
    /// The call header's credential or verifier is malformed (e.g. longer than 400 bytes).
    case badCredential(xid: UInt32, XDRError)
    /// A reply whose structure or status values are invalid.
    case garbageReply(xid: UInt32, String)
}

// MARK: - CALL

extension RPCCall {
    /// Decodes a CALL from a whole record (TCP) or datagram (UDP).
    public static func decode(_ message: ByteBuffer) throws(RPCMessageError) -> RPCCall {
        var buffer = message
        let start = buffer.readerIndex
        let xid: UInt32, program: UInt32, version: UInt32, procedure: UInt32
        // The six fixed words in one bounds check (each read alone costs one, and the call
        // path is hot); a message too short for them takes the word-by-word path, which
        // says which word is missing.
        if let words = buffer.readMultipleIntegers(endianness: .big, as: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32).self) {
            guard words.1 == RPCMessageType.call.rawValue else { throw .unexpectedMessageType(xid: words.0, type: words.1) }
            guard words.2 == rpcProtocolVersion else { throw .rpcVersionMismatch(xid: words.0, version: words.2) }
            (xid, program, version, procedure) = (words.0, words.3, words.4, words.5)
        } else {
            xid = try readXIDAndType(from: &buffer, expecting: .call)
            let rpcvers: UInt32
            do {
                rpcvers = try buffer.readXDRUInt32()
                guard rpcvers == rpcProtocolVersion else {
                    throw RPCMessageError.rpcVersionMismatch(xid: xid, version: rpcvers)
                }
                program = try buffer.readXDRUInt32()
                version = try buffer.readXDRUInt32()
                procedure = try buffer.readXDRUInt32()
            } catch let error as RPCMessageError {
                throw error
            } catch let error as XDRError {
                throw .unreadable(error)
            } catch {
                preconditionFailure("unreachable: \(error)")
            }
        }
        let credential: OpaqueAuth
        let headerEnd: Int
        let verifier: OpaqueAuth
        do {
            credential = try OpaqueAuth(xdr: &buffer)
            headerEnd = buffer.readerIndex
            verifier = try OpaqueAuth(xdr: &buffer)
        } catch {
            throw .badCredential(xid: xid, error)
        }
        let header = message.getSlice(at: start, length: headerEnd - start)!
        return RPCCall(
            xid: xid, program: program, version: version, procedure: procedure,
            credential: credential, verifier: verifier, arguments: buffer, headerBytes: header
        )
    }

    /// Appends the call header (xid through verifier) for the given fields.
    public static func encodeHeader(
        xid: UInt32, program: UInt32, version: UInt32, procedure: UInt32,
        credential: OpaqueAuth, verifier: OpaqueAuth, into buffer: inout ByteBuffer
    ) {
        writeHeaderThroughCredential(xid: xid, program: program, version: version, procedure: procedure,
                                     credential: credential, into: &buffer)
        var verifierWords = (verifier.flavor.rawValue.bigEndian, UInt32(verifier.body.readableBytes).bigEndian)
        _ = withUnsafeBytes(of: &verifierWords) { buffer.writeBytes($0) }
        if verifier.body.readableBytes > 0 { buffer.writeXDRFixedOpaque(verifier.body) }
    }

    /// xid through the end of the credential: the fixed words with the credential's flavor
    /// and length in one copy, then its body (see `RPCReply.encodeSuccessHeader`; with the
    /// verifier's two words, an AUTH_NONE or AUTH_SYS header takes two or three writes
    /// instead of eight: issue 18). One encoding for the call and for its RPCSEC_GSS
    /// checksum, which must cover exactly these bytes.
    private static func writeHeaderThroughCredential(
        xid: UInt32, program: UInt32, version: UInt32, procedure: UInt32, credential: OpaqueAuth, into buffer: inout ByteBuffer
    ) {
        var words = (xid.bigEndian, RPCMessageType.call.rawValue.bigEndian, rpcProtocolVersion.bigEndian,
                     program.bigEndian, version.bigEndian, procedure.bigEndian,
                     credential.flavor.rawValue.bigEndian, UInt32(credential.body.readableBytes).bigEndian)
        _ = withUnsafeBytes(of: &words) { buffer.writeBytes($0) }
        if credential.body.readableBytes > 0 { buffer.writeXDRFixedOpaque(credential.body) }
    }

    /// The bytes an RPCSEC_GSS header checksum covers: xid through the end of the
    /// credential, exactly as the call's header is encoded.
    public static func headerBytesForChecksum(
        xid: UInt32, program: UInt32, version: UInt32, procedure: UInt32, credential: OpaqueAuth
    ) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(24 + credential.encodedSize)
        writeHeaderThroughCredential(xid: xid, program: program, version: version, procedure: procedure,
                                     credential: credential, into: &buffer)
        return buffer
    }

    /// Appends the whole call: header then arguments.
    public func encode(into buffer: inout ByteBuffer) {
        Self.encodeHeader(
            xid: xid, program: program, version: version, procedure: procedure,
            credential: credential, verifier: verifier, into: &buffer
        )
        var args = arguments
        buffer.writeBuffer(&args)
    }
}

/// Reads a message's xid and type, the type being `expected`: an unreadable message or one
/// of the other type is an error that says which.
private func readXIDAndType(from buffer: inout ByteBuffer, expecting expected: RPCMessageType) throws(RPCMessageError) -> UInt32 {
    let xid: UInt32
    let type: UInt32
    do {
        xid = try buffer.readXDRUInt32()
        type = try buffer.readXDRUInt32()
    } catch {
        throw .unreadable(error)
    }
    guard type == expected.rawValue else {
        throw .unexpectedMessageType(xid: xid, type: type)
    }
    return xid
}

// MARK: - REPLY

extension RPCReply {
    /// Decodes a REPLY from a whole record or datagram. Results are a slice of `message`.
    public static func decode(_ message: ByteBuffer) throws(RPCMessageError) -> RPCReply {
        var buffer = message
        let xid = try readXIDAndType(from: &buffer, expecting: .reply)
        do {
            let replyStat = try buffer.readXDRUInt32()
            switch replyStat {
            case 0:  // MSG_ACCEPTED
                let verifier = try OpaqueAuth(xdr: &buffer)
                let stat = try buffer.readXDRUInt32()
                let body: AcceptedReplyStatus
                switch AcceptStatusCode(rawValue: stat) {
                case .success: body = .success(buffer)
                case .programUnavailable: body = .programUnavailable
                case .programMismatch:
                    body = .programMismatch(low: try buffer.readXDRUInt32(), high: try buffer.readXDRUInt32())
                case .procedureUnavailable: body = .procedureUnavailable
                case .garbageArguments: body = .garbageArguments
                case .systemError: body = .systemError
                case nil: throw RPCMessageError.garbageReply(xid: xid, "unknown accept_stat \(stat)")
                }
                if case .success = body {} else { try Self.requireEnd(buffer, xid: xid) }
                return RPCReply(xid: xid, status: .accepted(verifier: verifier, body))
            case 1:  // MSG_DENIED
                let rejectStat = try buffer.readXDRUInt32()
                let rejected: RejectedReply
                switch rejectStat {
                case 0:
                    rejected = .rpcMismatch(low: try buffer.readXDRUInt32(), high: try buffer.readXDRUInt32())
                case 1:
                    rejected = .authError(AuthStatus(rawValue: try buffer.readXDRUInt32()))
                default:
                    throw RPCMessageError.garbageReply(xid: xid, "unknown reject_stat \(rejectStat)")
                }
                try Self.requireEnd(buffer, xid: xid)
                return RPCReply(xid: xid, status: .denied(rejected))
            default:
                throw RPCMessageError.garbageReply(xid: xid, "unknown reply_stat \(replyStat)")
            }
        } catch let error as RPCMessageError {
            throw error
        } catch {
            throw .garbageReply(xid: xid, "\(error)")
        }
    }

    /// Replies other than SUCCESS have a fixed shape: bytes after it mean the message is not
    /// what it claims to be (found by the fuzzer: such replies did not round-trip).
    private static func requireEnd(_ buffer: ByteBuffer, xid: UInt32) throws(RPCMessageError) {
        if buffer.readableBytes != 0 {
            throw .garbageReply(xid: xid, "\(buffer.readableBytes) bytes after the reply")
        }
    }

    /// Appends the reply. For `.success` the results buffer's readable bytes follow.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeXDR(xid)
        buffer.writeXDR(RPCMessageType.reply.rawValue)
        switch status {
        case let .accepted(verifier, body):
            buffer.writeXDR(UInt32(0))
            verifier.encode(into: &buffer)
            buffer.writeXDR(body.code.rawValue)
            switch body {
            case var .success(results):
                buffer.writeBuffer(&results)
            case let .programMismatch(low, high):
                buffer.writeXDR(low)
                buffer.writeXDR(high)
            default:
                break
            }
        case let .denied(rejected):
            buffer.writeXDR(UInt32(1))
            switch rejected {
            case let .rpcMismatch(low, high):
                buffer.writeXDR(UInt32(0))
                buffer.writeXDR(low)
                buffer.writeXDR(high)
            case let .authError(status):
                buffer.writeXDR(UInt32(1))
                buffer.writeXDR(status.rawValue)
            }
        }
    }

    /// Appends the header of a successful accepted reply; the caller writes the results
    /// straight after it (saves building the results in a separate buffer).
    public static func encodeSuccessHeader(xid: UInt32, verifier: OpaqueAuth, into buffer: inout ByteBuffer) {
        // One copy of the fixed words, not one write each: every ByteBuffer write checks
        // capacity, uniqueness and exclusive access again (about 200 instructions each, most
        // of a small reply's encoding), and this runs once per reply.
        let reply = RPCMessageType.reply.rawValue, accepted = UInt32(0), success = AcceptStatusCode.success.rawValue
        if verifier.body.readableBytes == 0 {
            var words = (xid.bigEndian, reply.bigEndian, accepted.bigEndian, verifier.flavor.rawValue.bigEndian,
                         UInt32(0).bigEndian, success.bigEndian)
            _ = withUnsafeBytes(of: &words) { buffer.writeBytes($0) }
        } else {
            var words = (xid.bigEndian, reply.bigEndian, accepted.bigEndian, verifier.flavor.rawValue.bigEndian)
            _ = withUnsafeBytes(of: &words) { buffer.writeBytes($0) }
            buffer.writeXDROpaque(verifier.body)
            buffer.writeInteger(success, endianness: .big)
        }
    }
}
