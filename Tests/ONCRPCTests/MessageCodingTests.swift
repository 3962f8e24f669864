// Calls and replies on the hot path (issue 18's second trim): the fixed words of a call are
// read in one go and those of a reply written in one copy; for every length of a truncated
// message the errors must be exactly what the word-by-word code gave.

import NIOCore
import XCTest
import XDR
@testable import ONCRPC

final class MessageCodingTests: XCTestCase {
    private let sysCredential = OpaqueAuth(flavor: .sys, body: ByteBuffer(bytes: [0, 0, 0, 1, 0, 0, 0, 1, 0x61, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))

    private func encodedCall(type: UInt32 = 0, rpcvers: UInt32 = 2) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeXDR(UInt32(0x0102_0304))
        buffer.writeXDR(type)
        buffer.writeXDR(rpcvers)
        for word: UInt32 in [0x2000_0101, 1, 7] { buffer.writeXDR(word) }
        sysCredential.encode(into: &buffer)
        OpaqueAuth.none.encode(into: &buffer)
        buffer.writeXDR(UInt32(42))
        return buffer
    }

    /// What the word-by-word decoder said for a call cut after `length` bytes.
    private func expectedError(cutAt length: Int, type: UInt32, rpcvers: UInt32) -> RPCMessageError? {
        if length < 8 { return .unreadable(.truncated(needed: 4, available: length % 4)) }
        if type != 0 { return .unexpectedMessageType(xid: 0x0102_0304, type: type) }
        if length < 12 { return .unreadable(.truncated(needed: 4, available: length - 8)) }
        if rpcvers != 2 { return .rpcVersionMismatch(xid: 0x0102_0304, version: rpcvers) }
        if length < 24 { return .unreadable(.truncated(needed: 4, available: length % 4)) }
        return nil
    }

    func testEveryTruncationOfTheFixedWordsGivesTheWordByWordError() {
        for (type, rpcvers) in [(UInt32(0), UInt32(2)), (1, 2), (0, 3)] {
            let whole = encodedCall(type: type, rpcvers: rpcvers)
            for length in 0..<24 {
                let cut = whole.getSlice(at: 0, length: length)!
                let expected = expectedError(cutAt: length, type: type, rpcvers: rpcvers)
                XCTAssertThrowsError(try RPCCall.decode(cut), "type \(type) rpcvers \(rpcvers) length \(length)") { error in
                    XCTAssertEqual(error as? RPCMessageError, expected, "type \(type) rpcvers \(rpcvers) length \(length)")
                }
            }
            // Whole fixed words: the fast path decides type and version the same way.
            switch (type, rpcvers) {
            case (0, 2):
                let call = try? RPCCall.decode(whole)
                XCTAssertEqual(call?.xid, 0x0102_0304)
                XCTAssertEqual(call?.program, 0x2000_0101)
                XCTAssertEqual(call?.version, 1)
                XCTAssertEqual(call?.procedure, 7)
                XCTAssertEqual(call?.credential, sysCredential)
                XCTAssertEqual(call?.arguments.getInteger(at: call!.arguments.readerIndex, as: UInt32.self), 42)
            default:
                XCTAssertThrowsError(try RPCCall.decode(whole)) { error in
                    XCTAssertEqual(error as? RPCMessageError, expectedError(cutAt: 24, type: type, rpcvers: rpcvers))
                }
            }
        }
    }

    func testACallCutInsideItsCredentialIsABadCredential() {
        let whole = encodedCall()
        for length in 24..<(24 + 8 + sysCredential.body.readableBytes) {
            XCTAssertThrowsError(try RPCCall.decode(whole.getSlice(at: 0, length: length)!), "length \(length)") { error in
                guard case .badCredential(xid: 0x0102_0304, _)? = error as? RPCMessageError else {
                    return XCTFail("length \(length): \(error)")
                }
            }
        }
    }

    func testHeadersWrittenInOneCopyReadBackWordForWord() throws {
        let header = RPCCall.headerBytesForChecksum(xid: 9, program: 0x2000_0101, version: 1, procedure: 7, credential: sysCredential)
        var expected = ByteBuffer()
        for word: UInt32 in [9, 0, 2, 0x2000_0101, 1, 7] { expected.writeXDR(word) }
        sysCredential.encode(into: &expected)
        XCTAssertEqual(header, expected)

        // Reply verifiers: empty, a multiple of four, and one that needs padding.
        for body in [[UInt8](), [1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5]] {
            let verifier = OpaqueAuth(flavor: AuthFlavor(rawValue: 6), body: ByteBuffer(bytes: body))
            var reply = ByteBuffer()
            RPCReply.encodeSuccessHeader(xid: 0xdead_beef, verifier: verifier, into: &reply)
            reply.writeXDR(UInt32(77))
            var byWords = ByteBuffer()
            RPCReply(xid: 0xdead_beef, status: .accepted(verifier: verifier, .success(ByteBuffer(bytes: [0, 0, 0, 77])))).encode(into: &byWords)
            XCTAssertEqual(reply, byWords, "verifier of \(body.count) bytes")
            let decoded = try RPCReply.decode(reply)
            guard case let .accepted(decodedVerifier, .success(results)) = decoded.status else { return XCTFail("\(decoded)") }
            XCTAssertEqual(decodedVerifier, verifier)
            XCTAssertEqual(results.getInteger(at: results.readerIndex, as: UInt32.self), 77)
        }
    }

    func testCallHeadersWrittenInFewCopiesReadBackWordForWord() throws {
        // Credentials and verifiers empty, a multiple of four, and needing padding, in every pairing.
        let bodies: [[UInt8]] = [[], [1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5]]
        for credentialBody in bodies {
            for verifierBody in bodies {
                let credential = OpaqueAuth(flavor: .sys, body: ByteBuffer(bytes: credentialBody))
                let verifier = OpaqueAuth(flavor: AuthFlavor(rawValue: 6), body: ByteBuffer(bytes: verifierBody))
                var header = ByteBuffer()
                RPCCall.encodeHeader(xid: 9, program: 0x2000_0101, version: 1, procedure: 7,
                                     credential: credential, verifier: verifier, into: &header)
                var expected = ByteBuffer()
                for word: UInt32 in [9, 0, 2, 0x2000_0101, 1, 7] { expected.writeXDR(word) }
                expected.writeXDR(credential.flavor.rawValue)
                expected.writeXDROpaque(credential.body)
                expected.writeXDR(verifier.flavor.rawValue)
                expected.writeXDROpaque(verifier.body)
                XCTAssertEqual(header, expected, "credential \(credentialBody.count) bytes, verifier \(verifierBody.count)")
                let call = try RPCCall.decode(header)
                XCTAssertEqual(call.credential, credential)
                XCTAssertEqual(call.verifier, verifier)
                XCTAssertEqual(call.procedure, 7)
            }
        }
    }

    func testFramingAMessageThatIsAlreadyFramedDoesNotCopyIt() {
        // RPCClient frames a TCP call when it makes it; the call, its retry and the channel
        // handler then each hold the buffer, and the handler frames it again on the way out.
        var message = RPCFraming.startMessage(allocator: ByteBufferAllocator(), capacity: 16)
        message.writeXDR(UInt32(7))
        RPCFraming.finishRecord(&message)
        XCTAssertEqual(message.getInteger(at: message.readerIndex, as: UInt32.self), 0x8000_0004)
        let kept = message
        var again = message
        RPCFraming.finishRecord(&again)
        XCTAssertEqual(again, kept)
        let keptBytes = kept.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        let againBytes = again.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        XCTAssertEqual(againBytes, keptBytes, "framing an already framed message copied it")
    }
}
