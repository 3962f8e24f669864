// Every way a call can fail on the client, each with a message a person can act on.

import Foundation
import NIOCore
import XDR

/// Why a remote call failed.
public enum RPCClientError: Error, Equatable, Sendable {
    /// No connection could be made (nothing listening, unreachable, refused).
    case cannotConnect(address: String, reason: String)
    /// No reply arrived within the call's timeout.
    case timedOut(milliseconds: Int64)
    /// The connection closed before the reply arrived; the call may or may not have run.
    case connectionClosed
    /// The client was closed.
    case clientClosed
    /// The server does not offer this program.
    case programUnavailable(program: UInt32)
    /// The server offers this program only in versions `low...high`.
    case programMismatch(program: UInt32, version: UInt32, low: UInt32, high: UInt32)
    case procedureUnavailable(procedure: UInt32)
    /// The server could not decode the arguments.
    case garbageArguments
    /// The server failed while running the call.
    case systemError
    /// The server speaks RPC versions `low...high` only.
    case rpcMismatch(low: UInt32, high: UInt32)
    /// The server denied the call's authentication.
    case authError(AuthStatus)
    /// The reply's verifier did not check out: it did not come from the server we meant.
    case replyVerificationFailed(String)
    /// The reply was not a well-formed RPC reply.
    case garbageReply(String)
    /// The reply was fine but its results did not decode as the expected type.
    case badResults(XDRError)
    /// The call is larger than the transport can carry.
    case messageTooLarge(size: Int, maximum: Int)
}

extension RPCClientError: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .cannotConnect(address, reason): return "cannot connect to \(address): \(reason)"
        case let .timedOut(ms): return "no reply within \(Double(ms) / 1000) s"
        case .connectionClosed: return "the connection closed before the reply arrived"
        case .clientClosed: return "the client has been closed"
        case let .programUnavailable(program): return "program \(program) is not available on the server"
        case let .programMismatch(program, version, low, high):
            return "program \(program) version \(version) is not available (server has versions \(low)...\(high))"
        case let .procedureUnavailable(procedure): return "procedure \(procedure) is not available"
        case .garbageArguments: return "the server could not decode the arguments"
        case .systemError: return "the server failed while running the call"
        case let .rpcMismatch(low, high): return "the server speaks RPC versions \(low)...\(high) only"
        case let .authError(status): return "authentication failed: \(status)"
        case let .replyVerificationFailed(reason): return "the reply's verifier is invalid: \(reason)"
        case let .garbageReply(reason): return "garbage reply: \(reason)"
        case let .badResults(error): return "the results did not decode: \(error)"
        case let .messageTooLarge(size, maximum): return "message of \(size) bytes exceeds the transport maximum \(maximum)"
        }
    }
}

/// An error as a person reads it: NIO's IOError prints the system call and an `(errno: N)`
/// tuple, and NIO's socket-path errors print a Swift type name; users get the system's words.
public func errorInWords(_ error: any Error) -> String {
    if let io = error as? IOError { return String(cString: strerror(io.errnoCode)) }
    let text = "\(error)"
    if text.contains("UnixDomainSocketPathWrongType") { return "the path is not a socket" }
    if text.contains("UnixDomainSocketPathTooLong") { return "the socket path is too long (at most 107 bytes)" }
    return text
}
