// The host's root key file (keylogin -r): the dh192-des secret as hex on the first line ("-"
// when there is none, as classic keyserv reads only that line), then "GROUP HEX" lines for
// the strong groups. It is the host's identity, so it must be root's (or the daemon's own
// user's, for a keyserver run unprivileged in development) and unreadable by anyone else:
// a key others could read is a key others may hold.

import Foundation
import KeyCrypto

struct RootKeyFile {
    struct Problem: Error, CustomStringConvertible {
        let description: String
    }

    /// The secrets of the file, or nil when there is no file. Throws on a file that must not
    /// be used (wrong owner or mode, not a regular file, unreadable).
    /// `owner`: the uid besides root (and the daemon's own) that may own the file (a
    /// service key file may belong to the service's user).
    static func read(path: String, owner: uid_t? = nil) throws(Problem) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            if errno == ELOOP { throw Problem(description: "the root key file \(path) is a symbolic link: point --root-key at the file itself") }
            throw Problem(description: "cannot read the root key file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw Problem(description: "the root key file \(path) is not a regular file")
        }
        guard info.st_uid == 0 || info.st_uid == geteuid() || info.st_uid == owner else {
            throw Problem(description: "the root key file \(path) belongs to uid \(info.st_uid), not root: chown root \(path) (and treat the key as exposed: run keylogin -r again)")
        }
        guard info.st_mode & 0o077 == 0 else {
            let mode = String(info.st_mode & 0o777, radix: 8)
            throw Problem(description: "the root key file \(path) has mode \(mode), so others may read it: chmod 600 \(path) (and treat the key as exposed: run keylogin -r again)")
        }
        guard info.st_size <= 64 * 1024 else {
            throw Problem(description: "the root key file \(path) is \(info.st_size) bytes, far more than a key file holds")
        }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var filled = 0
        while filled < bytes.count {
            let count = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + filled, $0.count - filled, off_t(filled)) }
            guard count > 0 else { break }
            filled += count
        }
        if filled < bytes.count {
            SecretBytes.wipe(&bytes)
            throw Problem(description: "cannot read the root key file \(path): it changed while being read")
        }
        return bytes
    }
}
