// Password tags: what the directory can tell about a principal's passwords without knowing
// them. keylogin opens every active key of a principal with the one password it is given,
// so keys sealed under different passwords lock the user out; a tag stored beside each
// sealed key (an scrypt verifier under a salt of the principal's own) makes that visible to
// `keyadmin verify` and lets chkey check "is this the strong keys' password?" before sealing.
// Trusts: the rows it is given (a hand-edited tag can lie, the sealed blob stays authoritative).

import Foundation
import KeyCrypto

/// A password verifier for one sealing: version 1, the scrypt parameters, 16 bytes of scrypt
/// output over the principal's salt.
///
/// ```swift
/// let salt = PasswordTag.newSalt()
/// let tag = try PasswordTag(password: pw, salt: salt, parameters: .testing)
/// try tag.matches(password: pw, salt: salt)   // true
/// ```
public struct PasswordTag: Sendable, Equatable {
    public let bytes: [UInt8]

    static let version: UInt8 = 1

    /// Computes the tag of a password (one scrypt run).
    public init(password: SecretBytes, salt: Data, parameters: SealedSecretKey.Parameters = .default) throws {
        let verifier = try SealedSecretKey.passwordVerifier(password: password, salt: Array(salt), parameters: parameters)
        bytes = [Self.version, parameters.log2N, parameters.r, parameters.p] + verifier
    }

    /// A stored tag; nil if it is not one this code writes.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 20, bytes[0] == Self.version else { return nil }
        self.bytes = bytes
    }

    /// The scrypt parameters the tag was made with.
    public var parameters: SealedSecretKey.Parameters {
        SealedSecretKey.Parameters(log2N: bytes[1], r: bytes[2], p: bytes[3])
    }

    /// Whether `password` is the one this tag was made from (same parameters, constant time).
    public func matches(password: SecretBytes, salt: Data) throws -> Bool {
        let candidate = try PasswordTag(password: password, salt: salt, parameters: parameters)
        return SecretBytes.constantTimeEqual(candidate.bytes, bytes)
    }

    /// A fresh per-principal salt.
    public static func newSalt() -> Data {
        Data(RandomBytes.array(count: 16))
    }
}

/// Seals keys of one principal under one password, each with that password's tag.
public struct PasswordSealer {
    public let password: SecretBytes
    public let tag: PasswordTag
    public let parameters: SealedSecretKey.Parameters

    /// Computes the tag once (one scrypt run) for every key sealed after.
    public init(password: SecretBytes, salt: Data, parameters: SealedSecretKey.Parameters = .default) throws {
        self.password = password
        self.parameters = parameters
        tag = try PasswordTag(password: password, salt: salt, parameters: parameters)
    }

    public func seal(_ key: DHPrivateKey, netname: String) throws -> KeyEntry {
        var entry = try KeyEntry.sealing(key, netname: netname, password: password, parameters: parameters)
        entry.passwordTag = tag.bytes
        return entry
    }
}

/// What `keyadmin verify` can see of a principal's passwords without knowing them.
public enum PasswordFinding: Equatable, Sendable, CustomStringConvertible {
    /// Strong keys of one principal carry different tags: keylogin cannot open them all
    /// with one password. The groups under each distinct tag.
    case strongKeysDiffer([[DHGroupName]])
    /// The legacy key carries the strong keys' tag: its weak sealing guards the strong keys.
    case legacySharesPassword
    /// Keys with no tag (older rows, publickey imports): nothing can be said about them.
    case untagged([DHGroupName])

    /// A problem keylogin will trip over, as opposed to a warning or a gap.
    public var isProblem: Bool {
        if case .strongKeysDiffer = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case let .strongKeysDiffer(groups):
            let sets = groups.map { $0.map(\.rawValue).joined(separator: "+") }.joined(separator: " vs ")
            return "keys sealed under different passwords (\(sets)): keylogin cannot open them all; "
                + "chkey --rotate --mechanism M with the password of the others re-makes the odd one"
        case .legacySharesPassword:
            return "warning: the dh192-des key shares the strong keys' password (its DES sealing can be guessed offline, "
                + "which gives the password of the strong keys too; keyadmin chkey --mechanism dh192-des gives it its own)"
        case let .untagged(groups):
            return "note: \(groups.map(\.rawValue).joined(separator: ", ")) sealed without a password tag "
                + "(made before tags, or imported): cannot tell whether it shares the others' password"
        }
    }

    /// Compares the tags of a principal's keys. Only tags made under the principal's current
    /// salt compare; keys without one are listed as untagged.
    public static func check(_ keys: [KeyEntry]) -> [PasswordFinding] {
        var findings: [PasswordFinding] = []
        let strong = keys.filter { !$0.isLegacy }
        var byTag: [[UInt8]: [DHGroupName]] = [:]
        var untagged: [DHGroupName] = []
        for key in keys {
            guard let tag = key.passwordTag else { untagged.append(key.mechanism); continue }
            if !key.isLegacy { byTag[tag, default: []].append(key.mechanism) }
        }
        // Untagged strong keys only matter when there is something to compare them with.
        if keys.count > 1 && !untagged.isEmpty { findings.append(.untagged(untagged)) }
        if byTag.count > 1 {
            findings.append(.strongKeysDiffer(byTag.values.map { $0.sorted { $0.rawValue < $1.rawValue } }.sorted { $0[0].rawValue < $1[0].rawValue }))
        }
        if let legacy = keys.first(where: \.isLegacy)?.passwordTag, strong.contains(where: { $0.passwordTag == legacy }) {
            findings.append(.legacySharesPassword)
        }
        return findings
    }
}
