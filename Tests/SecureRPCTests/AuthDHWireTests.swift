// AUTH_DH wire format against vectors.md §5: the fullname and nickname calls, the server's
// reply verifier and the client's check, byte for byte.

import KeyCrypto
import NIOCore
import ONCRPC
import XCTest
import XDR
@testable import SecureRPC

private func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
private func hex(_ buffer: ByteBuffer) -> String { hex(Array(buffer.readableBytesView)) }
private func bytes(_ text: String) -> [UInt8] {
    let clean = Array(text.filter { !$0.isWhitespace })
    return stride(from: 0, to: clean.count, by: 2).map { UInt8(String(clean[$0..<$0 + 2]), radix: 16)! }
}

final class AuthDHWireTests: XCTestCase {
    let conversationKey = SecretBytes(copying: bytes("3b5d7f1002345779"))
    let stamp = AuthDHTimestamp(seconds: 1_700_000_000, microseconds: 123_456)

    func testFullnameCallMatchesTheVector() throws {
        let (window, verifier) = try AuthDHSeal.fullname(conversationKey: conversationKey, timestamp: stamp, window: 60)
        XCTAssertEqual(hex(window), "88eba99f")
        XCTAssertEqual(hex(verifier), "43e40304a8b217bb" + "aabb7fb4")
        let credential = AuthDHCredential.fullname(netname: "unix.1001@example.com", wrappedKey: bytes("371fc957f1dd4736"), encryptedWindow: window)
        var wire = ByteBuffer()
        credential.opaqueAuth.encode(into: &wire)
        XCTAssertEqual(hex(wire), "00000003 0000002c 00000000 00000015 756e6978 2e313030 31406578 616d706c 652e636f 6d000000 371fc957 f1dd4736 88eba99f"
            .replacingOccurrences(of: " ", with: ""))
        XCTAssertEqual(try AuthDHCredential.decode(credential.opaqueAuth.body), credential)

        let opened = try AuthDHSeal.openFullname(conversationKey: conversationKey, encryptedWindow: window, verifier: verifier)
        XCTAssertEqual(opened.timestamp, stamp)
        XCTAssertEqual(opened.window, 60)
        XCTAssertEqual(opened.windowVerifier, 59)
    }

    func testReplyVerifierAndNicknameCallMatchTheVector() throws {
        let reply = try AuthDHSeal.reply(conversationKey: conversationKey, timestamp: stamp, nickname: [0, 0, 0, 5])
        XCTAssertEqual(hex(reply), "af11779fb567c231" + "00000005")
        XCTAssertEqual(AuthDHSeal.checkReply(conversationKey: conversationKey, verifier: reply, sent: stamp), [0, 0, 0, 5])
        XCTAssertNil(AuthDHSeal.checkReply(conversationKey: conversationKey, verifier: reply,
                                           sent: AuthDHTimestamp(seconds: stamp.seconds, microseconds: stamp.microseconds + 1)))
        XCTAssertNil(AuthDHSeal.checkReply(conversationKey: SecretBytes(copying: bytes("0101010101010101")), verifier: reply, sent: stamp))

        let later = AuthDHTimestamp(seconds: 1_700_000_002, microseconds: 5)
        let verifier = try AuthDHSeal.nickname(conversationKey: conversationKey, timestamp: later)
        XCTAssertEqual(hex(verifier), "4257904db1fd0e61" + "00000000")
        var credential = ByteBuffer()
        AuthDHCredential.nickname([0, 0, 0, 5]).opaqueAuth.encode(into: &credential)
        XCTAssertEqual(hex(credential), "00000003" + "00000008" + "00000001" + "00000005")
        XCTAssertEqual(try AuthDHSeal.openNickname(conversationKey: conversationKey, verifier: verifier), later)

        // The per-call forms (buffers and integers, no arrays) give the same bytes.
        let schedule = try SunDES.Schedule(key: conversationKey)
        XCTAssertEqual(hex(AuthDHSeal.replyVerifier(schedule: schedule, timestamp: stamp, nickname: 5)), "af11779fb567c231" + "00000005")
        XCTAssertEqual(AuthDHSeal.checkReply(schedule: schedule, verifier: ByteBuffer(bytes: reply), sent: stamp), 5)
        XCTAssertNil(AuthDHSeal.checkReply(schedule: schedule, verifier: ByteBuffer(bytes: reply.dropLast()), sent: stamp))
        XCTAssertEqual(hex(AuthDHSeal.nicknameVerifier(schedule: schedule, timestamp: later)), "4257904db1fd0e61" + "00000000")
        XCTAssertEqual(try AuthDHSeal.openNickname(schedule: schedule, verifier: ByteBuffer(bytes: verifier)), later)
        XCTAssertThrowsError(try AuthDHSeal.openNickname(schedule: schedule, verifier: ByteBuffer(bytes: verifier + [0])))
        var body = ByteBuffer(bytes: [0xff])
        body.moveReaderIndex(forwardBy: 1)
        body.writeBytes(bytes("00000001" + "00000005"))
        XCTAssertEqual(AuthDHServer.nicknameHandle(body), 5, "read from the reader index")
    }

    func testMalformedCredentialsAreRefused() {
        for body in ["00000002", "00000001 000000", "00000001 00000005 00000000", "00000000 00000100" + String(repeating: "61", count: 256),
                     "00000000 00000003 61626300 371fc957 f1dd4736"] {
            XCTAssertThrowsError(try AuthDHCredential.decode(ByteBuffer(bytes: bytes(body))), body)
            XCTAssertNil(AuthDHServer.nicknameHandle(ByteBuffer(bytes: bytes(body))), "the server's in-place read refuses \(body) too")
        }
    }
}
