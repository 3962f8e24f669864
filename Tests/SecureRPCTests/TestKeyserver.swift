// A keyserver as keyserverd runs it (KEY_PROG v1/v2 and SRPC_KEYX over a unix socket, callers
// identified by AUTH_SYS), in the test process, with its stores at hand so a test can "log
// users in" directly.

import KeyServer
import Logging
import ONCRPC

struct TestKeyserver {
    let server: RPCServer
    let core: KeyServerCore
    let strong: StrongKeyStore

    /// `kssLeaseSeconds`: KEYX_DERIVE_LEASED's lease (keyserverd grants 30 s by default; 0
    /// here, so that a test sees every key change at once unless it asks for leases).
    static func start(socket: String, kssLeaseSeconds: UInt32 = 0, programs: (([RPCProgram]) -> [RPCProgram])? = nil) async throws -> TestKeyserver {
        var logger = Logger(label: "test-keyserver")
        logger.logLevel = .critical
        let core = KeyServerCore()
        let strong = StrongKeyStore()
        var configuration = RPCServer.Configuration()
        configuration.authenticators = [AuthSysServer()]
        let served = KeyServerService.programs(core: core, strong: strong, logger: logger, kssLeaseSeconds: kssLeaseSeconds)
        let server = RPCServer(programs: programs?(served) ?? served, configuration: configuration, logger: logger)
        try await server.listenUnix(path: socket)
        return TestKeyserver(server: server, core: core, strong: strong)
    }

    func shutdown() async { await server.shutdown() }
}
