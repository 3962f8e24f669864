// Turns whatever postgres-nio throws into one line a person can act on. PSQLError's own
// description is deliberately vague (it may hold query text), so the parts are picked out
// here: the server's message and SQLSTATE, or what went wrong reaching it. The location is
// named by its description, which has no password.

import Foundation
import KeyDirectory
import NIOCore
import NIOPosix
import PostgresNIO

enum PostgresErrors {
    static func directoryError(_ error: any Error, location: PostgresLocation) -> DirectoryError {
        if let error = error as? DirectoryError { return error }
        if let error = error as? PSQLError { return .storage("\(location): \(describe(error))") }
        if error is CancellationError { return .storage("\(location): cancelled") }
        return .storage("\(location): \(oneLine(String(describing: error)))")
    }

    static func describe(_ error: PSQLError) -> String {
        if let server = error.serverInfo, let message = server[.message] {
            let state = server[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return oneLine(message) + state
        }
        switch error.code {
        case .connectionError:
            return "cannot connect: " + (error.underlying.map(reason) ?? "no reason given")
        case .serverClosedConnection, .clientClosedConnection:
            return "the connection closed"
        case .poolClosed:
            return "the directory was closed"
        case .authMechanismRequiresPassword:
            return "the server asks for a password and none was given (PGPASSWORD or the URL)"
        case .unsupportedAuthMechanism:
            return "the server asks for an authentication method postgres-nio does not speak"
        case .sslUnsupported:
            return "the server does not offer TLS (sslmode=require)"
        default:
            return "\(error.code)"
        }
    }

    /// A socket error as the system words it ("Connection refused"), not NIO's call site.
    private static func reason(_ error: any Error) -> String {
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)) }
        // NIO tries each address of a name; the first failure says enough.
        if let error = error as? NIOConnectionError {
            if let first = error.connectionErrors.first { return reason(first.error) }
            if error.dnsAError != nil || error.dnsAAAAError != nil { return "cannot resolve \(error.host)" }
        }
        if let error = error as? ChannelError, case .connectTimeout = error { return "timed out" }
        return oneLine(String(describing: error))
    }

    /// Server messages and socket errors are one line already, nearly always; make sure.
    static func oneLine(_ text: String) -> String {
        String(text.split(whereSeparator: \.isNewline).joined(separator: " ").prefix(400))
    }
}
