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

    static func start(socket: String) async throws -> TestKeyserver {
        var logger = Logger(label: "test-keyserver")
        logger.logLevel = .critical
        let core = KeyServerCore()
        let strong = StrongKeyStore()
        var configuration = RPCServer.Configuration()
        configuration.authenticators = [AuthSysServer()]
        let server = RPCServer(programs: KeyServerService.programs(core: core, strong: strong, logger: logger),
                               configuration: configuration, logger: logger)
        try await server.listenUnix(path: socket)
        return TestKeyserver(server: server, core: core, strong: strong)
    }

    func shutdown() async { await server.shutdown() }
}
