// A Swift task executor backed by one NIO event loop, so that a task making RPC calls runs
// on the loop its connection lives on: writing a call and resuming with its reply then cost
// no thread hop (issue 18).

import NIOCore

/// Runs the jobs of the tasks that prefer it on one event loop.
///
/// Every ``RPCClient`` has one for its connection's loop, ``RPCClient/taskExecutor``; run
/// the calling code with it as the task's executor preference (child tasks inherit it):
///
/// ```swift
/// try await withTaskExecutorPreference(client.taskExecutor) {
///     for _ in 0..<1_000 { _ = try await client.call(procedure: 0) }
/// }
/// ```
///
/// Code in such a task runs on the event loop, so it must not block: no blocking file or
/// database work, no long computations, or every connection on that loop waits. (Actors keep
/// their own executors; only nonisolated async code follows the preference.)
public final class EventLoopTaskExecutor: TaskExecutor {
    /// The loop the jobs run on.
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute {
            job.runSynchronously(on: executor)
        }
    }
}
