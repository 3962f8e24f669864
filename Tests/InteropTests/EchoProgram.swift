// The TESTECHO program (Tests/CPeers/echo.x) in Swift, served and called by the interop tests.

import NIOCore
import ONCRPC
import XDR

enum TestEcho {
    static let program: UInt32 = 0x2000_0199
    static let version: UInt32 = 1
    static let echo: UInt32 = 1
    static let whoAmI: UInt32 = 2

    /// `string<>`: unbounded in the .x file; bounded here by the record size anyway.
    struct Text: XDRCodable, Sendable, Equatable {
        var value: String
        init(_ value: String) { self.value = value }
        init(xdr buffer: inout ByteBuffer) throws(XDRError) { value = try buffer.readXDRString() }
        func encode(into buffer: inout ByteBuffer) { buffer.writeXDR(value) }
    }

    static func makeProgram() -> RPCProgram {
        var program = RPCProgram(number: TestEcho.program, version: TestEcho.version)
        program.addImmediateProcedure(echo) { (text: Text, _) in text }
        program.addImmediateProcedure(whoAmI) { (_: XDRVoid, request) -> UInt32 in
            request.caller.uid ?? 0xffff_ffff
        }
        return program
    }
}
