// systemd's readiness protocol (sd_notify(3)), so that units can be Type=notify: a daemon
// says READY=1 once it serves, STOPPING=1 when it begins to shut down. The message is one
// datagram to the unix socket named by $NOTIFY_SOCKET ("@name" is Linux's abstract
// namespace). Without the variable (not started by systemd) nothing is sent. One sendto of
// a fixed string needs no event loop: it is written with the system call, as libsystemd does.

#if canImport(Glibc)
import Glibc
#endif

public enum ServiceNotification {
    /// The daemon serves: systemd starts the units ordered after it.
    public static func ready(status: String? = nil) {
        send("READY=1" + (status.map { "\nSTATUS=\($0)" } ?? ""))
    }

    /// The daemon begins its graceful shutdown.
    public static func stopping() { send("STOPPING=1") }

    /// Sends `message` to $NOTIFY_SOCKET; returns whether it was sent (false without one).
    @discardableResult
    public static func send(_ message: String, environment: [String: String]? = nil) -> Bool {
        #if canImport(Glibc)
        let path: String?
        if let environment { path = environment["NOTIFY_SOCKET"] } else { path = getenv("NOTIFY_SOCKET").map { String(cString: $0) } }
        guard let path, !path.isEmpty, path.hasPrefix("/") || path.hasPrefix("@") else { return false }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { return false }
        if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract: a leading NUL, no terminator
        withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (bytes[0] == 0 ? 0 : 1))
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let payload = Array(message.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                payload.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, socketAddress, length) }
            }
        }
        return sent == payload.count
        #else
        return false
        #endif
    }
}
