// The fuzz body for the keyserver's argument decoders as the server runs them, shared by the
// libFuzzer target `fuzz-keyserver` (Fuzz/) and the tests that replay the corpus and its
// crashers. The first byte picks one procedure of KEY_PROG v1/v2 or SRPC_KEYX v1 from
// `KeyServerService.programs` (the very table keyserverd serves) and whether the caller is
// a local root process or a caller without peer credentials; the rest is the argument
// bytes, handed to the procedure's handler. Trusts nothing in the input. It traps
// (precondition) only on a real bug: a handler that accepts arguments the XDR definition
// does not (or refuses ones it does with GARBAGE_ARGS), one that runs for a caller it must
// refuse, or a decoded argument that does not survive encode-then-decode.

import Dispatch
import KeyCrypto
import Logging
import NIOCore
import ONCRPC
import XDR

@_spi(Fuzzing)
public enum KeyServerDecoderFuzzing {
    private struct Procedure {
        var program: UInt32
        var version: UInt32
        var number: UInt32
        var handler: RPCProcedureHandler
    }

    /// uid 1 holds a legacy and an ffdhe2048 key, so the calls that read keys reach the
    /// Diffie-Hellman code; calls that change keys act for uid 2, so uid 1 stays as set up
    /// and one input behaves the same whenever it runs.
    private static let reader: UInt32 = 1
    private static let writer: UInt32 = 2

    private static let procedures: [Procedure] = {
        let peer = DHPrivateKey.generate(group: .dh192des).publicKey
        // Small caches, so that eviction runs too.
        let core = KeyServerCore(cacheCapacity: 8) { netname in netname.hasPrefix("unix.") ? peer : nil }
        let strong = StrongKeyStore(cacheCapacity: 8)
        _ = core.setSecret(uid: reader, hex: Array(DHPrivateKey.generate(group: .dh192des).secretHex.utf8))
        _ = strong.set(uid: reader, mechanism: .keyxFfdhe2048, secret: Array(repeating: 0x5a, count: 32))
        let logger = Logger(label: "fuzz-keyserver") { _ in SwiftLogNoOpLogHandler() }
        return KeyServerService.programs(core: core, strong: strong, logger: logger)
            .flatMap { program in
                program.procedures.keys.sorted().map {
                    Procedure(program: program.number, version: program.version, number: $0, handler: program.procedures[$0]!)
                }
            }
    }()

    public static func run(_ bytes: UnsafeRawBufferPointer) {
        guard let selector = bytes.first else { return }
        let procedure = procedures[Int(selector & 0x7f) % procedures.count]
        let privileged = selector & 0x80 != 0
        let arguments = ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: bytes.dropFirst()))
        let expected = argumentsDecode(procedure, arguments)

        let changesKeys = procedure.program == KeyVers2Client.program ? [1, 8].contains(procedure.number) : [1, 2].contains(procedure.number)
        let uid = changesKeys ? writer : reader
        let request = RPCRequest(
            xid: 1, program: procedure.program, version: procedure.version, procedure: procedure.number,
            caller: RPCCaller(flavor: .sys, uid: uid, gid: uid),
            arguments: arguments,
            context: RPCCallContext(transport: .tcp, remoteAddress: nil, localAddress: nil,
                                    peer: privileged ? PeerCredentials(pid: 1, uid: 0, gid: 0) : nil)
        )
        switch call(procedure.handler, request) {
        case let .success(result):
            precondition(expected != nil, "\(procedure.program)/\(procedure.version)/\(procedure.number) ran on arguments that do not decode")
            precondition(privileged || isOpen(procedure), "\(procedure.program)/\(procedure.number) ran for a caller without peer credentials")
            var encoded = ByteBuffer()
            result.encode(into: &encoded)
        case let .failure(error as XDRError):
            precondition(expected == nil, "\(procedure.program)/\(procedure.version)/\(procedure.number) refused decodable arguments: \(error)")
        case let .failure(error as RPCServerError):
            precondition(expected != nil, "\(procedure.program)/\(procedure.number) checked the caller before the arguments")
            precondition(error == .authError(.tooWeak) && !privileged, "\(procedure.program)/\(procedure.number) failed with \(error)")
        case let .failure(error):
            preconditionFailure("\(procedure.program)/\(procedure.number) threw \(error)")
        }
        if let expected {
            precondition(argumentsDecode(procedure, expected) == expected, "\(procedure.program)/\(procedure.number) arguments do not round-trip")
        }
    }

    /// KEY_GEN, KEY_GETCRED and the NULL procedures answer any local caller, as keyserv does.
    private static func isOpen(_ procedure: Procedure) -> Bool {
        procedure.number == 0 || (procedure.program == KeyVers2Client.program && [4, 5].contains(procedure.number))
    }

    /// The arguments re-encoded from their XDR definition in keyserver.x, or nil when they do
    /// not decode exactly. Independent of the handlers' own decoding, which it checks.
    private static func argumentsDecode(_ procedure: Procedure, _ arguments: ByteBuffer) -> ByteBuffer? {
        func exactly<T: XDRCodable>(_ type: T.Type) -> ByteBuffer? {
            (try? arguments.decodeXDRExactly(T.self))?.xdrEncoded()
        }
        func exactly(_ read: (inout ByteBuffer) throws -> Void, _ write: @escaping (inout ByteBuffer) -> Void) -> ByteBuffer? {
            var buffer = arguments
            guard (try? read(&buffer)) != nil, buffer.readableBytes == 0 else { return nil }
            var out = ByteBuffer()
            write(&out)
            return out
        }
        let void = exactly({ _ in }, { _ in })
        if procedure.program == KeyVers2Client.program {
            switch procedure.number {
            case 0, 4, 9: return void
            case 1, 10:
                var keybuf: [UInt8] = []
                return exactly({ keybuf = try $0.readXDRFixedOpaqueBytes(count: 48) }, { $0.writeXDRFixedOpaque(keybuf) })
            case 2, 3: return exactly(Cryptkeyarg.self)
            case 5:
                var name = ""
                return exactly({ name = try $0.readXDRString(maxLength: 255) }, { $0.writeXDR(name) })
            case 6, 7: return exactly(Cryptkeyarg2.self)
            case 8: return exactly(KeyNetstarg.self)
            default: preconditionFailure("KEY_PROG procedure \(procedure.number) has no argument definition here")
            }
        }
        switch procedure.number {
        case 0, 2, 6: return void
        case 1: return exactly(KeyxSetArg.self)
        case 3: return exactly(KeyxMechanism.self)
        case 4: return exactly(KeyxDeriveArg.self)
        case 5:
            var name = ""
            return exactly({ name = try $0.readXDRString(maxLength: 255) }, { $0.writeXDR(name) })
        default: preconditionFailure("SRPC_KEYX procedure \(procedure.number) has no argument definition here")
        }
    }

    /// Runs a handler to completion, as the server's dispatch would (async ones in a task).
    private static func call(_ handler: RPCProcedureHandler, _ request: RPCRequest) -> Result<any XDREncodable, any Error> {
        switch handler {
        case let .immediate(body):
            do { return .success(try body(request)) } catch { return .failure(error) }
        case let .async(body):
            let outcome = Outcome()
            Task {
                do { outcome.finish(.success(try await body(request))) } catch { outcome.finish(.failure(error)) }
            }
            return outcome.wait()
        }
    }

    /// A handler's result handed from its task to the waiting fuzz body. The semaphore
    /// orders the write before the read.
    private final class Outcome: @unchecked Sendable {
        private var result: Result<any XDREncodable, any Error>?
        private let done = DispatchSemaphore(value: 0)

        func finish(_ result: Result<any XDREncodable, any Error>) {
            self.result = result
            done.signal()
        }

        func wait() -> Result<any XDREncodable, any Error> {
            done.wait()
            return result!
        }
    }
}
