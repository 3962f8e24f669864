// The attacker in the middle of an RPCSEC_GSS session (ATTACKS.md #20-#26): replayed DATA
// calls are dropped and never run; a flipped bit anywhere in integrity- or privacy-protected
// arguments is refused; a replayed INIT is refused; privacy leaves no plaintext on the wire;
// a client that asks for ffdhe3072 or privacy is never served with less; replies changed on
// the way are refused by the client.

import Foundation
import KeyCrypto
import KeyServer
import NIOConcurrencyHelpers
import NIOCore
import ONCRPC
import XCTest
import XDR
@_spi(Testing) @testable import SecureRPC

final class GSSAttackTests: XCTestCase {
    private var fixture: GSSFixture!
    private var server: RPCServer!
    private var gss: GSSServer!
    private var tcp: SocketAddress!
    private var proxy: RecordProxy!
    private var proxied: SocketAddress!

    override func setUp() async throws {
        fixture = try await GSSFixture()
        (server, gss, tcp, _) = try await fixture.startServer()
        proxy = RecordProxy()
        proxied = try await proxy.start(upstream: tcp)
    }

    override func tearDown() async throws {
        await proxy.stop()
        await server.shutdown()
        await fixture.shutdown()
    }

    private var runs: Int { fixture.runs.withLockedValue { $0 } }

    /// Where the arguments start in a call record.
    private func argumentsOffset(_ record: ByteBuffer) throws -> Int {
        record.readableBytes - (try RPCCall.decode(record)).arguments.readableBytes
    }

    private func flipping(bit: Int, atByte offset: @escaping @Sendable (ByteBuffer) -> Int?, once: Bool = true) -> RecordProxy.Transform {
        let done = NIOLockedValueBox(false)
        return { direction, record in
            guard direction == .toServer, let at = offset(record), !(once && done.withLockedValue({ $0 })) else { return record }
            // Leave context creation alone.
            guard let call = try? RPCCall.decode(record), let credential = try? GSSCredential.decode(call.credential),
                  credential.procedure == .rpcsecGssData else { return record }
            done.withLockedValue { $0 = true }
            var changed = record
            let index = changed.readerIndex + at
            changed.setInteger(changed.getInteger(at: index, as: UInt8.self)! ^ UInt8(1 << bit), at: index)
            return changed
        }
    }

    func testReplayedDataCallIsDroppedAndNeverRuns() async throws {
        let client = fixture.client(.tcp, proxied, try fixture.authenticator(service: .integrity))
        _ = try await client.call(1, GSSBlob(Array("pay 100 to mallory".utf8)), returning: GSSBlob.self)
        XCTAssertEqual(runs, 1)
        let data = try XCTUnwrap(proxy.recorded(.toServer).last)
        // The exact record again, on a new connection and on the client's own: no reply.
        let reply = try await sendRawRecord(data, to: tcp, timeout: .milliseconds(500))
        XCTAssertNil(reply, "a replayed sequence number is dropped without a reply (RFC 2203 §5.3.3.1)")
        XCTAssertEqual(runs, 1)
        XCTAssertEqual(gss.statistics.replaysDropped, 1)

        // The proxy sends every call twice: the second copy is dropped, the call runs once.
        proxy.transform.withLockedValue { $0 = { _, record in record } }
        let twice = NIOLockedValueBox<[ByteBuffer]>([])
        proxy.transform.withLockedValue {
            $0 = { direction, record in
                if direction == .toServer { twice.withLockedValue { $0.append(record) } }
                return record
            }
        }
        _ = try await client.call(1, GSSBlob([1]), returning: GSSBlob.self)
        let duplicate = try XCTUnwrap(twice.withLockedValue { $0.last })
        let again = try await sendRawRecord(duplicate, to: tcp, timeout: .milliseconds(500))
        XCTAssertNil(again)
        XCTAssertEqual(runs, 2)
        XCTAssertEqual(gss.statistics.replaysDropped, 2)
        await client.close()
    }

    func testFlippedBitAnywhereInProtectedArgumentsIsRefused() async throws {
        for service in [GSSService.integrity, .privacy] {
            let client = fixture.client(.tcp, proxied, try fixture.authenticator(group: .ffdhe2048, service: service))
            let argument = GSSBlob(Array("transfer 100 from alice to bob".utf8))
            _ = try await client.call(1, argument, returning: GSSBlob.self)
            let sample = try XCTUnwrap(proxy.recorded(.toServer).last)
            let start = try argumentsOffset(sample)
            let length = sample.readableBytes - start
            let before = runs
            let refusedBefore = gss.statistics.bodiesRefused
            // Every byte of the wrapped arguments, a different bit each time.
            for offset in 0..<length {
                let bit = offset % 8
                proxy.transform.withLockedValue { [self] in
                    $0 = self.flipping(bit: bit, atByte: { record in
                        (try? RPCCall.decode(record)).map { record.readableBytes - $0.arguments.readableBytes + offset }
                    })
                }
                do {
                    let echoed = try await client.call(1, argument, returning: GSSBlob.self)
                    XCTFail("\(service): bit \(bit) of argument byte \(offset) flipped, yet the call returned \(echoed)")
                } catch RPCClientError.garbageArguments {
                    // RFC 2203: a body that does not verify is GARBAGE_ARGS.
                }
            }
            XCTAssertEqual(runs, before, "\(service): no tampered call ran")
            XCTAssertEqual(gss.statistics.bodiesRefused, refusedBefore + length)
            proxy.transform.withLockedValue { $0 = { _, record in record } }
            // The context survives (ATTACKS.md #24): the next honest call works.
            let echoed = try await client.call(1, argument, returning: GSSBlob.self)
            XCTAssertEqual(echoed, argument)
            await client.close()
        }
    }

    func testFlippedBitInHeaderOrReplyIsRefused() async throws {
        let client = fixture.client(.tcp, proxied, try fixture.authenticator(service: .privacy))
        _ = try await client.call(1, GSSBlob([1]), returning: GSSBlob.self)
        // A bit of the credential's sequence number: the header MIC fails → CREDPROBLEM; the
        // client makes a new context and sends the call again, which runs once.
        proxy.transform.withLockedValue { [self] in $0 = self.flipping(bit: 0, atByte: { _ in 4 * 6 + 8 + 8 + 3 }) }
        _ = try await client.call(1, GSSBlob([2]), returning: GSSBlob.self)
        XCTAssertEqual(runs, 2)
        XCTAssertEqual(gss.statistics.contextsCreated, 2)

        // A bit of the reply's encrypted results: the client refuses the reply.
        let flipped = NIOLockedValueBox(false)
        proxy.transform.withLockedValue {
            $0 = { direction, record in
                guard direction == .toClient, record.readableBytes > 60, !flipped.withLockedValue({ $0 }) else { return record }
                flipped.withLockedValue { $0 = true }
                var changed = record
                let index = changed.writerIndex - 5
                changed.setInteger(changed.getInteger(at: index, as: UInt8.self)! ^ 0x10, at: index)
                return changed
            }
        }
        do {
            _ = try await client.call(1, GSSBlob([3]), returning: GSSBlob.self)
            XCTFail("a changed reply must be refused")
        } catch let RPCClientError.replyVerificationFailed(reason) {
            XCTAssertTrue(reason.contains("decrypt"), reason)
        }
        await client.close()
    }

    func testReplayedInitIsRefused() async throws {
        let client = fixture.client(.tcp, proxied, try fixture.authenticator())
        _ = try await client.call(1, GSSBlob([1]), returning: GSSBlob.self)
        let initRecord = try XCTUnwrap(proxy.recorded(.toServer).first)
        XCTAssertEqual(try GSSCredential.decode(try RPCCall.decode(initRecord).credential).procedure, .rpcsecGssInit)
        let reply = try await sendRawRecord(initRecord, to: tcp)
        guard case let .accepted(verifier, .success(results))? = reply?.status else { return XCTFail("\(String(describing: reply))") }
        let result = try results.decodeXDRExactly(RpcGssInitRes.self)
        XCTAssertEqual(result.gssMajor, GSSMajorStatus.duplicateToken)
        XCTAssertEqual(result.gssMinor, GSSMinorStatus.replayedToken.rawValue)
        XCTAssertEqual(result.handle, [])
        XCTAssertEqual(verifier, .none)
        XCTAssertEqual(gss.statistics.contextsCreated, 1)
        await client.close()
    }

    func testPrivacyLeavesNoPlaintextOnTheWire() async throws {
        let secret = Array("the launch code is 0000-1111-2222".utf8)
        func captured(_ service: GSSService) async throws -> [UInt8] {
            proxy.records.withLockedValue { $0 = [] }
            let client = fixture.client(.tcp, proxied, try fixture.authenticator(service: service))
            let echoed = try await client.call(1, GSSBlob(secret), returning: GSSBlob.self)
            XCTAssertEqual(echoed.bytes, secret)
            await client.close()
            return proxy.records.withLockedValue { $0.flatMap { Array($0.1.readableBytesView) } }
        }
        func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
            guard haystack.count >= needle.count else { return false }
            return (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<($0 + needle.count)]) == needle }
        }
        // Control: under integrity the arguments travel readable, both ways.
        let integrity = try await captured(.integrity)
        XCTAssertTrue(contains(integrity, secret))
        let private_ = try await captured(.privacy)
        XCTAssertFalse(contains(private_, secret), "privacy: the plaintext must not appear in the capture")
        XCTAssertFalse(contains(private_, Array(secret[4..<20])), "not even part of it")
    }

    func testDowngradeIsNeverServed() async throws {
        // 1. The attacker rewrites the group in the INIT token (ffdhe3072 → ffdhe2048).
        proxy.transform.withLockedValue {
            $0 = { direction, record in
                guard direction == .toServer, var call = try? RPCCall.decode(record),
                      (try? GSSCredential.decode(call.credential))?.procedure == .rpcsecGssInit,
                      let argument = try? call.arguments.decodeXDRExactly(RpcGssInitArg.self),
                      var token = try? ByteBuffer(bytes: argument.gssToken).decodeXDRExactly(SrpcDhInitToken.self) else { return record }
                token.body.group = .srpcDhFfdhe2048
                call.arguments = RpcGssInitArg(gssToken: Array(token.xdrEncoded().readableBytesView)).xdrEncoded()
                var out = ByteBuffer()
                call.encode(into: &out)
                return out
            }
        }
        let client = fixture.client(.tcp, proxied, try fixture.authenticator(group: .ffdhe3072))
        do {
            _ = try await client.call(1, GSSBlob([1]), returning: GSSBlob.self)
            XCTFail("a rewritten INIT must not make a context")
        } catch let GSSClientError.contextRefused(major, _) {
            XCTAssertNotEqual(major, GSSMajorStatus.complete)
        }
        XCTAssertEqual(gss.statistics.contextsCreated, 0)
        await client.close()

        // 2. The attacker rewrites the service of each call (privacy → none): the header MIC
        // fails, every retry too; nothing runs and nothing is answered in the clear.
        proxy.transform.withLockedValue {
            $0 = { direction, record in
                guard direction == .toServer, let call = try? RPCCall.decode(record),
                      let credential = try? GSSCredential.decode(call.credential), credential.procedure == .rpcsecGssData else { return record }
                var changed = record
                changed.setInteger(UInt32(1), at: changed.readerIndex + 4 * 6 + 8 + 12)
                return changed
            }
        }
        let privacy = fixture.client(.tcp, proxied, try fixture.authenticator(group: .ffdhe3072, service: .privacy))
        do {
            _ = try await privacy.call(1, GSSBlob([2]), returning: GSSBlob.self)
            XCTFail("a call whose service was lowered must be refused")
        } catch RPCClientError.authError(.gssCredentialProblem) {}
        XCTAssertEqual(runs, 0)
        await privacy.close()

        // 3. A server that accepts only ffdhe2048: the client asking for ffdhe3072 gets an
        // error, never a 2048-bit context.
        proxy.transform.withLockedValue { $0 = { _, record in record } }
        let (weakServer, weakGSS, weakTCP, _) = try await fixture.startServer(configure: { $0.groups = [.ffdhe2048] })
        let asking = fixture.client(.tcp, weakTCP, try fixture.authenticator(group: .ffdhe3072))
        do {
            _ = try await asking.call(1, GSSBlob([3]), returning: GSSBlob.self)
            XCTFail("no fallback to ffdhe2048")
        } catch let error as GSSClientError {
            XCTAssertEqual(error, .contextRefused(major: GSSMajorStatus.badMech, minor: GSSMinorStatus.groupNotAccepted.rawValue))
        }
        XCTAssertEqual(weakGSS.statistics.contextsCreated, 0)
        await asking.close()
        await weakServer.shutdown()

        // 4. A reply stripped of its protection (results sent as if service none): refused.
        let dataCalls = NIOLockedValueBox(Set<UInt32>())
        proxy.transform.withLockedValue {
            $0 = { direction, record in
                if direction == .toServer {
                    if let call = try? RPCCall.decode(record), call.procedure == 1 { dataCalls.withLockedValue { _ = $0.insert(call.xid) } }
                    return record
                }
                guard let reply = try? RPCReply.decode(record), dataCalls.withLockedValue({ $0.contains(reply.xid) }),
                      case let .accepted(verifier, .success) = reply.status else { return record }
                var out = ByteBuffer()
                RPCReply(xid: reply.xid, status: .accepted(verifier: verifier, .success(GSSBlob([3]).xdrEncoded()))).encode(into: &out)
                return out
            }
        }
        let integrity = fixture.client(.tcp, proxied, try fixture.authenticator(group: .ffdhe3072, service: .integrity))
        do {
            _ = try await integrity.call(1, GSSBlob([3]), returning: GSSBlob.self)
            XCTFail("an unprotected reply must be refused")
        } catch RPCClientError.replyVerificationFailed {}
        await integrity.close()
    }

    func testSequenceNumberAtMaxseqIsAContextProblem() async throws {
        let authenticator = try fixture.authenticator(service: .none)
        let client = fixture.client(.tcp, tcp, authenticator)
        _ = try await client.call(1, GSSBlob([1]), returning: GSSBlob.self)
        let context = try XCTUnwrap(authenticator.currentContext)
        // A call signed properly but numbered MAXSEQ.
        let credential = GSSCredential(procedure: .rpcsecGssData, sequence: SRPCDH.maxSequence, service: .none, handle: context.handle).opaqueAuth
        let header = RPCCall.headerBytesForChecksum(xid: 5, program: gssProgramNumber, version: 1, procedure: 1, credential: credential)
        let verifier = OpaqueAuth(flavor: .rpcsecGSS, body: ByteBuffer(bytes: SRPCDH.mic(context.sessionKeysForTesting.clientToServer, .callHeader, header)))
        var record = ByteBuffer()
        RPCCall(xid: 5, program: gssProgramNumber, version: 1, procedure: 1, credential: credential, verifier: verifier,
                arguments: GSSBlob([1]).xdrEncoded()).encode(into: &record)
        let reply = try await sendRawRecord(record, to: tcp)
        XCTAssertEqual(reply?.status, .denied(.authError(.gssContextProblem)))
        // A missing verifier: CREDPROBLEM before anything else is looked at.
        var unsigned = ByteBuffer()
        RPCCall(xid: 6, program: gssProgramNumber, version: 1, procedure: 1, credential: credential, verifier: .none,
                arguments: GSSBlob([1]).xdrEncoded()).encode(into: &unsigned)
        let unsignedReply = try await sendRawRecord(unsigned, to: tcp)
        XCTAssertEqual(unsignedReply?.status, .denied(.authError(.gssCredentialProblem)))
        XCTAssertEqual(runs, 1)
        await client.close()
    }
}
