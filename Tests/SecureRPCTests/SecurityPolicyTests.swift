// SecurityPolicy with a choice of requirements (filesvc-server --require-auth dh): each
// requirement is met as a whole or not at all — AUTH_DH's flavor and RPCSEC_GSS's weaker
// protection do not add up to a pass.

import ONCRPC
import XCTest
@testable import SecureRPC

final class SecurityPolicyTests: XCTestCase {
    func testAnyOfRequirementsEachAsAWhole() {
        let policy = SecurityPolicy(anyOf: [.gss(minimumGroup: .ffdhe3072, minimumService: .privacy), SecurityRequirement(flavors: [.dh])],
                                    procedures: [9: .anyone])
        func gss(_ bits: Int, _ protection: RPCMessageProtection) -> RPCCaller {
            RPCCaller(flavor: .rpcsecGSS, isVerified: true, netname: "unix.1@x", protection: protection, keyExchangeBits: bits)
        }
        let dh = RPCCaller(flavor: .dh, isVerified: true, netname: "unix.1@x", keyExchangeBits: 192)
        let rows: [(RPCCaller, UInt32, AuthStatus?)] = [
            (gss(3072, .privacy), 1, nil),
            (gss(4096, .privacy), 1, nil),
            (gss(3072, .integrity), 1, .tooWeak),
            (gss(3072, .none), 1, .tooWeak),
            (gss(2048, .privacy), 1, .tooWeak),
            (dh, 1, nil),
            (RPCCaller(flavor: .dh, isVerified: false), 1, .tooWeak),
            (RPCCaller(flavor: .sys, uid: 0), 1, .tooWeak),
            (RPCCaller(flavor: .sys, uid: 0), 0, nil),    // NULL is open
            (gss(3072, .none), 9, nil),                   // a procedure's own exception
        ]
        for (index, (caller, procedure, expected)) in rows.enumerated() {
            XCTAssertEqual(policy.authorize(caller, procedure: procedure), expected, "row \(index): \(caller)")
        }
    }
}
