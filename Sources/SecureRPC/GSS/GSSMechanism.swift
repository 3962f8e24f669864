// The srpc-dh mechanism's cryptography, shared by client and server and kept free of I/O
// so tests (and the forward-secrecy attacker) can drive it directly: the INIT
// authenticator under K_ss, the transcript, the session keys, the per-message checksums
// (MICs) and the integrity and privacy wrappers of RFC 2203 §5.3.2. docs/GSS.md is the
// specification; every constant here appears there.

import Foundation
import KeyCrypto
import KeyServer
import NIOCore
import ONCRPC
import XDR

/// The Diffie-Hellman group an RPCSEC_GSS context is made with.
public enum GSSGroup: String, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    case ffdhe2048, ffdhe3072, ffdhe4096

    public var dhGroup: DHGroupName {
        switch self {
        case .ffdhe2048: return .ffdhe2048
        case .ffdhe3072: return .ffdhe3072
        case .ffdhe4096: return .ffdhe4096
        }
    }

    public var bits: Int {
        switch self {
        case .ffdhe2048: return 2048
        case .ffdhe3072: return 3072
        case .ffdhe4096: return 4096
        }
    }

    var wire: SrpcDhGroup {
        switch self {
        case .ffdhe2048: return .srpcDhFfdhe2048
        case .ffdhe3072: return .srpcDhFfdhe3072
        case .ffdhe4096: return .srpcDhFfdhe4096
        }
    }

    init(wire: SrpcDhGroup) {
        switch wire {
        case .srpcDhFfdhe2048: self = .ffdhe2048
        case .srpcDhFfdhe3072: self = .ffdhe3072
        case .srpcDhFfdhe4096: self = .ffdhe4096
        }
    }

    /// The keyserver's name for the group (SRPC_KEYX), from the keyserver's own table.
    public var keyserverMechanism: KeyxMechanism { StrongKeyStore.mechanism(dhGroup)! }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.bits < rhs.bits }
    public var description: String { rawValue }
}

/// How RPCSEC_GSS protects each call's arguments and results (RFC 2203 §5.3.2).
public enum GSSService: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Only the header is checksummed.
    case none
    /// Arguments and results carry a checksum.
    case integrity
    /// Arguments and results are encrypted and authenticated.
    case privacy

    var wire: RpcGssService {
        switch self {
        case .none: return .rpcGssSvcNone
        case .integrity: return .rpcGssSvcIntegrity
        case .privacy: return .rpcGssSvcPrivacy
        }
    }

    init(wire: RpcGssService) {
        switch wire {
        case .rpcGssSvcNone: self = .none
        case .rpcGssSvcIntegrity: self = .integrity
        case .rpcGssSvcPrivacy: self = .privacy
        }
    }

    public var protection: RPCMessageProtection {
        switch self {
        case .none: return .none
        case .integrity: return .integrity
        case .privacy: return .privacy
        }
    }

    public var description: String { rawValue }
}

/// GSS-API major status values used in `rpc_gss_init_res` (RFC 2744 §3.9.1).
public enum GSSMajorStatus {
    public static let complete: UInt32 = 0
    public static let duplicateToken: UInt32 = 1 << 1
    public static let oldToken: UInt32 = 1 << 2
    public static let badMech: UInt32 = 1 << 16
    public static let badName: UInt32 = 2 << 16
    public static let badSig: UInt32 = 6 << 16
    public static let noCred: UInt32 = 7 << 16
    public static let defectiveToken: UInt32 = 9 << 16
    public static let defectiveCredential: UInt32 = 10 << 16
    public static let failure: UInt32 = 13 << 16
}

/// Why srpc-dh refused to create a context: the `gss_minor` of a failed INIT reply.
public enum GSSMinorStatus: UInt32, Sendable, CustomStringConvertible {
    case none = 0
    case badTokenVersion = 1
    case groupNotAccepted = 2
    case wrongServer = 3
    case unknownClient = 4
    case clockSkew = 5
    case badAuthenticator = 6
    case replayedToken = 7
    case serverNotLoggedIn = 8
    case badEphemeralKey = 9
    case replayCacheFull = 10
    case malformedToken = 11
    case notSingleRoundTrip = 12
    /// A netname in the token is not `unix.NAME@DOMAIN` in printable ASCII (GSS_S_BAD_NAME).
    case malformedName = 13
    /// Too many INITs in progress on the server (GSS_S_FAILURE): try again shortly.
    case busy = 14
    /// Too many failed INITs from the caller's address lately (GSS_S_FAILURE).
    case addressRateLimited = 15
    /// Too many failed INITs naming this client lately (GSS_S_FAILURE).
    case principalRateLimited = 16

    public var description: String {
        switch self {
        case .none: return "no detail"
        case .badTokenVersion: return "the server speaks another srpc-dh token version"
        case .groupNotAccepted: return "the server does not accept this Diffie-Hellman group"
        case .wrongServer: return "the token names another server"
        case .unknownClient: return "the server's key directory has no key of this group for the client"
        case .clockSkew: return "the client's clock is too far from the server's"
        case .badAuthenticator: return "the authenticator did not verify (wrong keys)"
        case .replayedToken: return "the INIT token was seen before (replay)"
        case .serverNotLoggedIn: return "the server's keyserver holds no secret key of this group for the server"
        case .badEphemeralKey: return "the ephemeral public key is not a valid group element"
        case .replayCacheFull: return "the server's INIT replay cache is full; try again later"
        case .malformedToken: return "the token did not decode"
        case .notSingleRoundTrip: return "srpc-dh needs no CONTINUE_INIT"
        case .malformedName: return "a netname in the token is malformed (expected unix.NAME@DOMAIN, printable ASCII)"
        case .busy: return "the server has too many context set-ups in progress; try again shortly"
        case .addressRateLimited: return "too many failed context set-ups from this address; try again later"
        case .principalRateLimited: return "too many failed context set-ups for this client; try again later"
        }
    }
}

/// One direction's keys: a MAC key for checksums (kept prepared: the HMAC's inner and outer
/// states, in SecretBytes) and an AES-256-GCM key for privacy.
public struct GSSDirectionKeys: Sendable {
    public let mac: SecretBytes
    public let seal: SecretBytes
    let preparedMAC: PreparedHMAC
    let preparedSeal: PreparedAES256GCM

    public init(mac: SecretBytes, seal: SecretBytes) {
        self.mac = mac
        self.seal = seal
        preparedMAC = PreparedHMAC(key: mac)
        // Only allocation failure can make this fail; nothing sensible is left to do then.
        preparedSeal = try! PreparedAES256GCM(key: seal)
    }
}

/// The four session keys of a context, derived once by each side.
public struct GSSSessionKeys: Sendable {
    public let clientToServer: GSSDirectionKeys
    public let serverToClient: GSSDirectionKeys
}

/// The pieces of srpc-dh, as functions of their inputs.
public enum SRPCDH {
    public static let tokenVersion: UInt32 = 1
    public static let mechanismName = "srpc-dh"
    /// The sequence window the server advertises and enforces.
    public static let defaultSequenceWindow: UInt32 = 1024
    public static let maxSequence: UInt32 = 0x8000_0000

    // MARK: labels (domain separation; docs/GSS.md §Keys)

    static let kssLabel = Array("srpc-dh v1 K_ss".utf8)
    static let keysLabel = Array("srpc-dh v1 session keys".utf8)
    static let transcriptLabel = Array("srpc-dh v1 transcript".utf8)
    static let confirmLabel = Array("srpc-dh v1 confirm".utf8)

    /// What a MIC (HMAC-SHA256) covers, as its first byte: the same key never signs two
    /// kinds of data that could be confused. (2 is unused: bodies are checksummed with GMAC
    /// under the seal key, see `wrap`.)
    public enum MICKind: UInt8, Sendable {
        case callHeader = 1
        case replySequence = 3
        case sequenceWindow = 4
    }

    /// HKDF info for K_ss: the label and a hash of group and both names, so the keyserver
    /// hands out a key bound to this pair and this use (and the info stays 47 bytes).
    public static func kssInfo(group: GSSGroup, client: String, server: String) -> [UInt8] {
        var names: [UInt8] = []
        for part in [group.rawValue, client, server] {
            names += withUnsafeBytes(of: UInt32(part.utf8.count).bigEndian, Array.init) + Array(part.utf8)
        }
        return kssLabel + StrongCrypto.sha256(names)
    }

    /// The INIT authenticator: AES-256-GCM under K_ss, random 96-bit nonce, plaintext
    /// timestamp ‖ nonce, associated data XDR(body).
    public static func sealAuthenticator(kss: SecretBytes, body: SrpcDhInitBody) throws -> SrpcDhInitToken {
        let aeadNonce = RandomBytes.array(count: 12)
        let sealed = try StrongCrypto.seal(.aes256GCM, key: kss, nonce: aeadNonce,
                                           plaintext: authenticatorPlaintext(body), authenticating: Array(body.xdrEncoded().readableBytesView))
        return SrpcDhInitToken(body: body, authNonce: aeadNonce, authenticator: sealed)
    }

    /// Checks the authenticator; false for any failure.
    public static func openAuthenticator(kss: SecretBytes, token: SrpcDhInitToken) -> Bool {
        guard let plain = try? StrongCrypto.open(.aes256GCM, key: kss, nonce: token.authNonce, sealed: token.authenticator,
                                                 authenticating: Array(token.body.xdrEncoded().readableBytesView)) else { return false }
        return SecretBytes.constantTimeEqual(plain, authenticatorPlaintext(token.body))
    }

    static func authenticatorPlaintext(_ body: SrpcDhInitBody) -> [UInt8] {
        withUnsafeBytes(of: body.timestamp.bigEndian, Array.init) + body.nonce
    }

    /// SHA-256 over the label, the whole INIT token and the reply body, as XDR.
    public static func transcript(initToken: SrpcDhInitToken, replyBody: SrpcDhReplyBody) -> [UInt8] {
        var data = transcriptLabel
        data += initToken.xdrEncoded().readableBytesView
        data += replyBody.xdrEncoded().readableBytesView
        return StrongCrypto.sha256(data)
    }

    /// HKDF-SHA256(salt = client nonce ‖ server nonce, ikm = K_ss ‖ DH(a, b),
    /// info = label ‖ transcript) → 128 bytes: c→s MAC, c→s AEAD, s→c MAC, s→c AEAD.
    public static func sessionKeys(kss: SecretBytes, ephemeralShared: SecretBytes, clientNonce: [UInt8], serverNonce: [UInt8],
                                   transcript: [UInt8]) -> GSSSessionKeys {
        let ikm = SecretBytes(count: kss.count + ephemeralShared.count) { out in
            kss.withUnsafeBytes { out.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            ephemeralShared.withUnsafeBytes { (out.baseAddress! + kss.count).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
        let okm = StrongCrypto.hkdf(inputKeyMaterial: ikm, salt: clientNonce + serverNonce, info: keysLabel + transcript, outputByteCount: 128)
        func part(_ index: Int) -> SecretBytes {
            okm.withUnsafeBytes { SecretBytes(copying: UnsafeRawBufferPointer(rebasing: $0[(index * 32)..<(index * 32 + 32)])) }
        }
        return GSSSessionKeys(clientToServer: GSSDirectionKeys(mac: part(0), seal: part(1)),
                              serverToClient: GSSDirectionKeys(mac: part(2), seal: part(3)))
    }

    /// The server's confirmation tag over the transcript.
    public static func confirmation(keys: GSSSessionKeys, transcript: [UInt8]) -> [UInt8] {
        StrongCrypto.hmac(key: keys.serverToClient.mac, confirmLabel + transcript)
    }

    // MARK: per-message protection

    /// HMAC-SHA256(the direction's MAC key, kind ‖ data).
    public static func mic(_ keys: GSSDirectionKeys, _ kind: MICKind, _ data: UnsafeRawBufferPointer) -> [UInt8] {
        keys.preparedMAC.authenticate(prefix: kind.rawValue, data)
    }

    public static func mic(_ keys: GSSDirectionKeys, _ kind: MICKind, _ buffer: ByteBuffer) -> [UInt8] {
        buffer.withUnsafeReadableBytes { mic(keys, kind, $0) }
    }

    public static func mic(_ keys: GSSDirectionKeys, _ kind: MICKind, sequence: UInt32) -> [UInt8] {
        withUnsafeBytes(of: sequence.bigEndian) { mic(keys, kind, $0) }
    }

    /// The MIC as an RPCSEC_GSS verifier.
    static func verifier(_ keys: GSSDirectionKeys, _ kind: MICKind, sequence: UInt32) -> OpaqueAuth {
        var body = ByteBuffer()
        body.writeWithUnsafeMutableBytes(minimumWritableBytes: PreparedHMAC.tagLength) { out in
            withUnsafeBytes(of: sequence.bigEndian) { keys.preparedMAC.authenticate(prefix: kind.rawValue, $0, into: out) }
            return PreparedHMAC.tagLength
        }
        return OpaqueAuth(flavor: .rpcsecGSS, body: body)
    }

    /// Constant-time check of a MIC.
    public static func verifyMIC(_ keys: GSSDirectionKeys, _ kind: MICKind, _ data: UnsafeRawBufferPointer, tag: ByteBuffer) -> Bool {
        tag.withUnsafeReadableBytes { keys.preparedMAC.verify(prefix: kind.rawValue, data, tag: $0) }
    }

    public static func verifyMIC(_ keys: GSSDirectionKeys, _ kind: MICKind, _ buffer: ByteBuffer, tag: ByteBuffer) -> Bool {
        buffer.withUnsafeReadableBytes { verifyMIC(keys, kind, $0, tag: tag) }
    }

    public static func verifyMIC(_ keys: GSSDirectionKeys, _ kind: MICKind, sequence: UInt32, tag: ByteBuffer) -> Bool {
        withUnsafeBytes(of: sequence.bigEndian) { verifyMIC(keys, kind, $0, tag: tag) }
    }

    /// The 96-bit nonce of a body's AES-256-GCM operation (privacy: encryption; integrity:
    /// GMAC): direction (1 = client to server, 2 = server to client), zero, sequence number.
    /// Unique under each context's seal key because each side sends each sequence number at
    /// most once per direction, and a sequence number belongs to one call of one service.
    static func bodyNonce(clientToServer: Bool, sequence: UInt32) -> [UInt8] {
        var nonce = [UInt8](repeating: 0, count: 12)
        nonce[3] = clientToServer ? 1 : 2
        nonce[8] = UInt8(sequence >> 24)
        nonce[9] = UInt8(truncatingIfNeeded: sequence >> 16)
        nonce[10] = UInt8(truncatingIfNeeded: sequence >> 8)
        nonce[11] = UInt8(truncatingIfNeeded: sequence)
        return nonce
    }

    /// Wraps `body` for `service`: none returns it unchanged.
    public static func wrap(_ body: ByteBuffer, sequence: UInt32, service: GSSService, keys: GSSDirectionKeys,
                            clientToServer: Bool) throws -> ByteBuffer {
        if service == .none { return body }
        var out = ByteBuffer()
        out.reserveCapacity(body.readableBytes + 64)
        try wrap(into: &out, sequence: sequence, service: service, keys: keys, clientToServer: clientToServer) { $0.writeImmutableBuffer(body) }
        return out
    }

    /// Appends the wrapped form of the body that `encodeBody` appends: the body is written
    /// once, where it ends up, and checksummed or encrypted in place.
    public static func wrap(into out: inout ByteBuffer, sequence: UInt32, service: GSSService, keys: GSSDirectionKeys,
                            clientToServer: Bool, encodeBody: (inout ByteBuffer) -> Void) throws {
        guard service != .none else {
            encodeBody(&out)
            return
        }
        // opaque<> length word (set below), then rpc_gss_data_t = seq_num ‖ body.
        let lengthIndex = out.writerIndex
        out.writeInteger(UInt32(0))
        let dataIndex = out.writerIndex
        out.writeInteger(sequence)
        encodeBody(&out)
        let length = out.writerIndex - dataIndex
        let dataOffset = dataIndex - out.readerIndex
        switch service {
        case .none:
            break
        case .integrity:
            out.setInteger(UInt32(length), at: lengthIndex)
            out.writeRepeatingByte(0, count: xdrPadding(length))
            out.writeInteger(UInt32(PreparedAES256GCM.tagLength))
            let tagOffset = out.writerIndex - out.readerIndex
            out.writeRepeatingByte(0, count: PreparedAES256GCM.tagLength)
            let nonce = bodyNonce(clientToServer: clientToServer, sequence: sequence)
            try out.withUnsafeMutableReadableBytes { all in
                try keys.preparedSeal.authenticate(nonce: nonce, UnsafeRawBufferPointer(rebasing: all[dataOffset..<(dataOffset + length)]),
                                                   into: UnsafeMutableRawBufferPointer(rebasing: all[tagOffset..<(tagOffset + PreparedAES256GCM.tagLength)]))
            }
        case .privacy:
            let sealedLength = length + PreparedAES256GCM.tagLength
            out.setInteger(UInt32(sealedLength), at: lengthIndex)
            out.writeRepeatingByte(0, count: PreparedAES256GCM.tagLength + xdrPadding(sealedLength))
            let nonce = bodyNonce(clientToServer: clientToServer, sequence: sequence)
            try out.withUnsafeMutableReadableBytes { all in
                let data = UnsafeMutableRawBufferPointer(rebasing: all[dataOffset..<(dataOffset + length)])
                try keys.preparedSeal.seal(nonce: nonce, UnsafeRawBufferPointer(data), into: data,
                                           tag: UnsafeMutableRawBufferPointer(rebasing: all[(dataOffset + length)..<(dataOffset + sealedLength)]))
            }
        }
    }

    /// Why a wrapped body was refused. One case per check, for logs and tests; the peer only
    /// ever sees GARBAGE_ARGS (calls) or a verification failure (replies).
    public enum UnwrapError: Error, Equatable, CustomStringConvertible {
        case malformed
        case badChecksum
        case decryptionFailed
        case sequenceMismatch(inBody: UInt32, expected: UInt32)

        public var description: String {
            switch self {
            case .malformed: return "the wrapped body did not decode"
            case .badChecksum: return "the body's checksum did not verify"
            case .decryptionFailed: return "the body did not decrypt"
            case let .sequenceMismatch(inBody, expected): return "sequence number \(inBody) in the body, \(expected) expected"
            }
        }
    }

    /// Checks and unwraps a body that `wrap` made; returns the procedure's XDR bytes.
    public static func unwrap(_ wrapped: ByteBuffer, sequence: UInt32, service: GSSService, keys: GSSDirectionKeys,
                              clientToServer: Bool) throws(UnwrapError) -> ByteBuffer {
        switch service {
        case .none:
            return wrapped
        case .integrity:
            var buffer = wrapped
            guard var data = try? buffer.readXDROpaque(), let checksum = try? buffer.readXDROpaque(maxLength: 64),
                  buffer.readableBytes == 0 else { throw .malformed }
            let nonce = bodyNonce(clientToServer: clientToServer, sequence: sequence)
            let valid = data.withUnsafeReadableBytes { bytes in
                checksum.withUnsafeReadableBytes { keys.preparedSeal.verify(nonce: nonce, bytes, tag: $0) }
            }
            guard valid else { throw .badChecksum }
            guard let inBody = data.readInteger(as: UInt32.self) else { throw .malformed }
            guard inBody == sequence else { throw .sequenceMismatch(inBody: inBody, expected: sequence) }
            return data
        case .privacy:
            var buffer = wrapped
            guard let sealed = try? buffer.readXDROpaque(), buffer.readableBytes == 0, sealed.readableBytes >= 4 + PreparedAES256GCM.tagLength else {
                throw .malformed
            }
            let length = sealed.readableBytes - PreparedAES256GCM.tagLength
            var plain = ByteBuffer()
            let nonce = bodyNonce(clientToServer: clientToServer, sequence: sequence)
            let opened = sealed.withUnsafeReadableBytes { sealedBytes in
                plain.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { out in
                    keys.preparedSeal.open(nonce: nonce, UnsafeRawBufferPointer(rebasing: sealedBytes[..<length]),
                                   tag: UnsafeRawBufferPointer(rebasing: sealedBytes[length...]),
                                   into: UnsafeMutableRawBufferPointer(rebasing: out[..<length])) ? length : 0
                }
            }
            guard opened == length else { throw .decryptionFailed }
            guard let inBody = plain.readInteger(as: UInt32.self) else { throw .malformed }
            guard inBody == sequence else { throw .sequenceMismatch(inBody: inBody, expected: sequence) }
            return plain
        }
    }
}

/// RFC 2203 §5.3.3.1 replay protection: the highest sequence number seen and a bitmap of
/// the `size` numbers below it. A number above the highest slides the window; one inside
/// and unseen is accepted; a number seen before or below the window is not.
public struct GSSSequenceWindow: Sendable {
    public let size: UInt32
    private var highest: UInt32?
    private var bits: [UInt64]

    public init(size: UInt32 = SRPCDH.defaultSequenceWindow) {
        precondition(size >= 64 && size % 64 == 0)
        self.size = size
        self.bits = Array(repeating: 0, count: Int(size / 64))
    }

    private func isSet(_ sequence: UInt32) -> Bool {
        let index = sequence % size
        return bits[Int(index / 64)] & (1 << UInt64(index % 64)) != 0
    }

    private mutating func set(_ sequence: UInt32, _ value: Bool) {
        let index = sequence % size
        if value {
            bits[Int(index / 64)] |= 1 << UInt64(index % 64)
        } else {
            bits[Int(index / 64)] &= ~(1 << UInt64(index % 64))
        }
    }

    /// Records `sequence` and returns true when it was new and inside the window.
    public mutating func accept(_ sequence: UInt32) -> Bool {
        guard let top = highest else {
            highest = sequence
            set(sequence, true)
            return true
        }
        if sequence > top {
            if sequence - top >= size {
                for i in bits.indices { bits[i] = 0 }
            } else {
                var s = top &+ 1
                while s != sequence {
                    set(s, false)
                    s &+= 1
                }
            }
            set(sequence, true)
            highest = sequence
            return true
        }
        if top - sequence >= size { return false }
        if isSet(sequence) { return false }
        set(sequence, true)
        return true
    }
}
