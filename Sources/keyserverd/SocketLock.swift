// One keyserverd per socket. A second daemon started on the socket of a running one used to
// unlink and rebind it, stranding the first (which still held every logged-in user's secret)
// and, on its own exit, deleting the socket and the rpcbind registrations. The lock is an
// flock on a file beside the socket, held for the daemon's life: the kernel drops it when
// the process dies however it dies, so a socket left by a crash is recognised as stale.

import Foundation
import NIOCore
import NIOPosix

struct SocketLock: ~Copyable {
    let path: String
    private let descriptor: Int32

    struct Held: Error, CustomStringConvertible {
        let socket: String, lockFile: String, holder: String?
        var description: String {
            "another keyserverd is serving \(socket)\(holder.map { " (pid \($0))" } ?? "") — it holds \(lockFile); stop it first (systemctl stop keyserverd, or kill that pid)"
        }
    }

    struct Failed: Error, CustomStringConvertible {
        let description: String
    }

    /// Takes the lock beside `socket`, or says who holds it.
    init(socket: String) throws {
        path = socket + ".lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            throw Failed(description: "cannot open the lock file \(path): \(String(cString: strerror(errno))) (is the directory of --socket right, and writable by this user?)")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            var buffer = [UInt8](repeating: 0, count: 32)
            let count = pread(fd, &buffer, buffer.count, 0)
            close(fd)
            guard code == EWOULDBLOCK else {
                throw Failed(description: "cannot lock \(path): \(String(cString: strerror(code)))")
            }
            let pid = count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : nil
            throw Held(socket: socket, lockFile: path, holder: pid.flatMap { Int($0) != nil ? $0 : nil })
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, pid, pid.count, 0)
        descriptor = fd
    }

    /// With the lock held, a socket file is a crashed daemon's, unless something that does
    /// not take the lock (an older keyserverd, another program) still answers on it.
    static func somethingAnswers(at socket: String) async -> Bool {
        var info = stat()
        guard lstat(socket, &info) == 0 else { return false }
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(2))
                .connect(unixDomainSocketPath: socket).get()
            try? await channel.close()
            return true
        } catch {
            return false
        }
    }

    deinit {
        close(descriptor)
    }
}
