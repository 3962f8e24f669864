// The fuzz body for the XDR and RPC message decoders, shared by the libFuzzer entry point
// (Sources/rpcfuzz) and the regression tests that replay its crashers. It feeds arbitrary
// bytes to every decoder that reads from the network and checks that whatever decodes
// survives encode-then-decode unchanged. (Byte equality is too strong: like libtirpc we
// accept non-zero padding, and re-encoding writes zeros.) It must never trap on any input.

import NIOCore
import XDR

@_spi(Fuzzing)
public enum DecoderFuzzing {
    /// Runs every decoder over `bytes`. Traps (precondition) only when a decoded value does
    /// not re-encode to the bytes it came from, which is a real bug.
    public static func run(_ bytes: UnsafeRawBufferPointer) {
        let buffer = ByteBuffer(bytes: bytes)

        if let call = try? RPCCall.decode(buffer) {
            var encoded = ByteBuffer()
            call.encode(into: &encoded)
            precondition(encoded.readableBytes <= buffer.readableBytes, "RPCCall re-encodes longer")
            guard let again = try? RPCCall.decode(encoded) else { preconditionFailure("RPCCall re-encoding does not decode") }
            precondition(again.xid == call.xid && again.program == call.program && again.version == call.version
                && again.procedure == call.procedure && again.credential == call.credential
                && again.verifier == call.verifier && again.arguments == call.arguments, "RPCCall does not round-trip")
        }

        if let reply = try? RPCReply.decode(buffer) {
            var encoded = ByteBuffer()
            reply.encode(into: &encoded)
            precondition((try? RPCReply.decode(encoded)) == reply, "RPCReply does not round-trip")
        }

        if let parameters = try? buffer.decodeXDRExactly(AuthSysParameters.self) {
            precondition((try? parameters.xdrEncoded().decodeXDRExactly(AuthSysParameters.self)) == parameters,
                         "AuthSysParameters does not round-trip")
        }

        if let list = try? buffer.decodeXDRExactly(RPCBindMappingList.self) {
            var encoded = ByteBuffer()
            encoded.writeXDRLinkedList(list.entries) { buffer, entry in entry.encode(into: &buffer) }
            precondition((try? encoded.decodeXDRExactly(RPCBindMappingList.self))?.entries == list.entries,
                         "rpcbind list does not round-trip")
        }

        // Record marking: the same stream cut into chunks at a position taken from the input
        // must give the same records as the whole stream.
        var whole = RecordMarkingDecoder(maximumRecordSize: 4096)
        var wholeBuffer = buffer
        var wholeRecords: [ByteBuffer] = []
        var wholeFailed = false
        do {
            while let record = try whole.nextRecord(from: &wholeBuffer) { wholeRecords.append(record) }
        } catch {
            wholeFailed = true
        }
        let chunk = max(1, Int(bytes.first ?? 1) % 17)
        var chunked = RecordMarkingDecoder(maximumRecordSize: 4096)
        var pending = ByteBuffer()
        var chunkedRecords: [ByteBuffer] = []
        var chunkedFailed = false
        var offset = 0
        outer: while offset < bytes.count {
            let end = min(bytes.count, offset + chunk)
            pending.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
            offset = end
            do {
                while let record = try chunked.nextRecord(from: &pending) { chunkedRecords.append(record) }
            } catch {
                chunkedFailed = true
                break outer
            }
        }
        precondition(wholeFailed == chunkedFailed, "record marking depends on how bytes arrive")
        if !wholeFailed {
            precondition(wholeRecords == chunkedRecords, "record marking depends on how bytes arrive")
        }

        // Generic composite readers with small bounds.
        var generic = buffer
        _ = try? generic.readXDRArray(maxCount: 64) { (b: inout ByteBuffer) throws(XDRError) in try b.readXDRString(maxLength: 32) }
        _ = try? generic.readXDRLinkedList(maxCount: 64) { (b: inout ByteBuffer) throws(XDRError) in try b.readXDROpaque(maxLength: 64) }
        _ = try? generic.readXDROptional { (b: inout ByteBuffer) throws(XDRError) in try b.readXDRUInt64() }
    }
}
