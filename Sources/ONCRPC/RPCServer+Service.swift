// RPCServer as a swift-service-lifecycle `Service`, so daemons run it in a `ServiceGroup`
// that turns SIGTERM/SIGINT into a graceful shutdown (stop accepting, finish calls in
// flight, unregister from rpcbind).

import Logging
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

extension RPCServer: Service {
    /// Runs until graceful shutdown is requested (or the task is cancelled), then shuts the
    /// server down. Start listening before adding the server to a `ServiceGroup`.
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }
}

extension RPCServer {
    /// Serves until SIGTERM or SIGINT asks for a graceful shutdown, calling `ready` once those
    /// signals are trapped. A daemon that announces itself ready before then can be killed by
    /// the default action of a SIGTERM sent the moment it says so (a supervisor or test
    /// stopping it at once), leaving its socket and registrations behind.
    /// - Parameters:
    ///   - logger: The service group's logger.
    ///   - ready: Announces readiness (a line on standard output, sd_notify).
    public func runUntilShutdownSignal(logger: Logger, ready: @escaping @Sendable () -> Void) async throws {
        let announcement = ServiceGroupConfiguration.ServiceConfiguration(service: ReadinessAnnouncement(announce: ready),
                                                                         successTerminationBehavior: .ignore)
        let group = ServiceGroup(configuration: .init(services: [.init(service: self), announcement],
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// A service that only announces: a ServiceGroup starts its services after it has trapped
/// its signals, so this runs once a SIGTERM would be a graceful shutdown.
private struct ReadinessAnnouncement: Service {
    let announce: @Sendable () -> Void
    func run() async throws { announce() }
}

/// Signal handling that daemons need before they start.
public enum ProcessSignals {
    /// Unblocks SIGINT and SIGTERM for the whole process. A process inherits the signal mask
    /// of the thread that spawned it, and some launchers (test runners among them) block
    /// nearly everything; a blocked SIGTERM would never reach the shutdown handler. Call at
    /// the top of `main`, before any thread is created.
    public static func unblockShutdownSignals() {
        #if canImport(Glibc)
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGHUP)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        #endif
    }
}
