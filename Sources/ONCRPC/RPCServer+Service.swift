// RPCServer as a swift-service-lifecycle `Service`, so daemons run it in a `ServiceGroup`
// that turns SIGTERM/SIGINT into a graceful shutdown (stop accepting, finish calls in
// flight, unregister from rpcbind).

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
