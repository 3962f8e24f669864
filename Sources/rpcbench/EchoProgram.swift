// TESTECHO (Tests/CPeers/echo.x) in Swift: the program rpcbench serves and calls, identical
// on the wire to the rpcgen C peers so either side can be swapped for the other.

import NIOCore
import ONCRPC
import XDR

enum TestEcho {
    static let program: UInt32 = 0x2000_0199
    static let version: UInt32 = 1
    static let echo: UInt32 = 1
    static let whoAmI: UInt32 = 2

    /// `string<>`; bounded in practice by the transport's record limit.
    struct Text: XDRCodable, Sendable {
        var value: String
        init(_ value: String) { self.value = value }
        init(xdr buffer: inout ByteBuffer) throws(XDRError) { value = try buffer.readXDRString() }
        func encode(into buffer: inout ByteBuffer) { buffer.writeXDR(value) }
    }

    /// ECHO without decoding into a String: the arguments are already the XDR string, so
    /// the result is the same bytes (after checking they are one well-formed string).
    struct RawText: XDRCodable, Sendable {
        var bytes: ByteBuffer
        init(xdr buffer: inout ByteBuffer) throws(XDRError) {
            let before = buffer
            _ = try buffer.readXDROpaque()
            bytes = before.getSlice(at: before.readerIndex, length: buffer.readerIndex - before.readerIndex)!
        }
        func encode(into buffer: inout ByteBuffer) {
            var copy = bytes
            buffer.writeBuffer(&copy)
        }
    }

    static func makeProgram() -> RPCProgram {
        var program = RPCProgram(number: TestEcho.program, version: TestEcho.version)
        program.addImmediateProcedure(echo) { (text: RawText, _) in text }
        program.addImmediateProcedure(whoAmI) { (_: XDRVoid, request) -> UInt32 in
            request.caller.uid ?? 0xffff_ffff
        }
        return program
    }
}
