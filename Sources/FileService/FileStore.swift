// The file service's storage: a directory tree under one root. Paths come from the network,
// so every component is checked (no "..", no empty or over-long names, no reserved names)
// and walked with openat(O_NOFOLLOW): a symlink anywhere is refused, so nothing outside the
// root can be reached. Owners live in a sidecar directory, written atomically (temp+rename).

#if canImport(Glibc)
import Glibc
#endif

/// A failed file operation, as a wire status.
struct FileStoreError: Error {
    var status: FileStatus
    init(_ status: FileStatus) { self.status = status }

    static func fromErrno(_ code: Int32 = errno) -> FileStoreError {
        switch code {
        case ENOENT: return .init(.fsNoent)
        case EEXIST: return .init(.fsExist)
        case ENOTDIR: return .init(.fsNotdir)
        case EISDIR: return .init(.fsIsdir)
        case EACCES, EPERM, ELOOP: return .init(.fsAcces)
        case ENOSPC, EDQUOT: return .init(.fsNospc)
        case ENAMETOOLONG: return .init(.fsNametoolong)
        case ENOTEMPTY: return .init(.fsNotempty)
        case EINVAL: return .init(.fsInval)
        default: return .init(.fsIo)
        }
    }
}

/// Files under a root directory. Methods block: call them off the event loop.
final class FileStore: Sendable {
    /// Root-level name reserved for the owner sidecar; clients cannot touch it.
    static let metadataName = ".filesvc-meta"

    let root: String
    private let rootFD: Int32

    init(root: String) throws {
        self.root = root
        let fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw FileStoreError.fromErrno() }
        rootFD = fd
        if mkdirat(fd, Self.metadataName, 0o700) != 0 && errno != EEXIST {
            throw FileStoreError.fromErrno()
        }
    }

    deinit { close(rootFD) }

    // MARK: path handling

    /// Splits and checks a client path: absolute, no "." or "..", names within bounds.
    static func components(of path: String) throws(FileStoreError) -> [String] {
        guard path.utf8.count <= Int(FileServiceProtocol.maximumPath) else { throw .init(.fsNametoolong) }
        guard path.hasPrefix("/") else { throw .init(.fsInval) }
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        for part in parts {
            if part == "." || part == ".." { throw .init(.fsAcces) }
            if part.utf8.count > Int(FileServiceProtocol.maximumName) { throw .init(.fsNametoolong) }
            if part.utf8.contains(0) { throw .init(.fsInval) }
        }
        if parts.first == metadataName { throw .init(.fsAcces) }
        return parts
    }

    /// Opens the directory that contains the last component, refusing symlinks on the way.
    /// Returns (directory fd, last name); the caller closes the fd. For the root itself the
    /// name is nil.
    private func parent(of path: String) throws(FileStoreError) -> (fd: Int32, name: String?) {
        let parts = try Self.components(of: path)
        var fd = dup(rootFD)
        guard fd >= 0 else { throw .fromErrno() }
        for part in parts.dropLast() {
            let next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let code = errno
            let isLink = next < 0 && isSymlink(fd, part)
            close(fd)
            guard next >= 0 else {
                throw isLink ? FileStoreError(.fsAcces) : .fromErrno(code)
            }
            fd = next
        }
        return (fd, parts.last)
    }

    /// Whether `name` in `fd` is a symlink (O_DIRECTORY|O_NOFOLLOW reports ENOTDIR for a
    /// symlink to a directory, so the refusal needs this second look).
    private func isSymlink(_ fd: Int32, _ name: String) -> Bool {
        var info = stat()
        return fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
    }

    private func statAt(_ fd: Int32, _ name: String) throws(FileStoreError) -> stat {
        var info = stat()
        guard fstatat(fd, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { throw .fromErrno() }
        if (info.st_mode & S_IFMT) == S_IFLNK { throw .init(.fsAcces) }
        return info
    }

    // MARK: operations

    func attributes(_ path: String) throws(FileStoreError) -> FsAttr {
        let (fd, name) = try parent(of: path)
        defer { close(fd) }
        let info: stat
        if let name {
            info = try statAt(fd, name)
        } else {
            var rootInfo = stat()
            guard fstat(fd, &rootInfo) == 0 else { throw .fromErrno() }
            info = rootInfo
        }
        let isDirectory = (info.st_mode & S_IFMT) == S_IFDIR
        return FsAttr(
            type: isDirectory ? .fsDir : .fsReg,
            size: UInt64(info.st_size),
            mode: UInt32(info.st_mode & 0o7777),
            owner: owner(of: path) ?? "anonymous",
            mtime: Int64(info.st_mtim.tv_sec)
        )
    }

    func read(_ path: String, offset: UInt64, count: UInt32) throws(FileStoreError) -> FsReadOk {
        guard offset <= UInt64(Int64.max) else { throw .init(.fsInval) }
        let fd = try openFile(path, flags: O_RDONLY)
        defer { close(fd) }
        let wanted = Int(min(count, FileServiceProtocol.maximumData))
        var got = 0
        let data = [UInt8](unsafeUninitializedCapacity: wanted) { raw, initialized in
            got = max(pread(fd, raw.baseAddress, wanted, off_t(offset)), 0)
            initialized = got
        }
        var info = stat()
        fstat(fd, &info)
        return FsReadOk(data: data, eof: offset + UInt64(got) >= UInt64(info.st_size))
    }

    func write(_ path: String, offset: UInt64, data: [UInt8], truncate: Bool) throws(FileStoreError) -> UInt32 {
        guard offset <= UInt64(Int64.max) - UInt64(FileServiceProtocol.maximumData) else { throw .init(.fsInval) }
        let fd = try openFile(path, flags: O_WRONLY)
        defer { close(fd) }
        let written = data.withUnsafeBytes { raw in pwrite(fd, raw.baseAddress, raw.count, off_t(offset)) }
        guard written >= 0 else { throw .fromErrno() }
        if truncate {
            guard ftruncate(fd, off_t(offset) + off_t(written)) == 0 else { throw .fromErrno() }
        }
        return UInt32(written)
    }

    func create(_ path: String, exclusive: Bool, owner: String) throws(FileStoreError) {
        let (dirFD, name) = try parent(of: path)
        defer { close(dirFD) }
        guard let name else { throw .init(.fsIsdir) }
        var flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC
        if exclusive { flags |= O_EXCL }
        let fd = openat(dirFD, name, flags, 0o644)
        guard fd >= 0 else { throw errno == ELOOP ? .init(.fsAcces) : .fromErrno() }
        close(fd)
        if self.owner(of: path) == nil {
            try setOwner(owner, of: path)
        }
    }

    func makeDirectory(_ path: String, owner: String) throws(FileStoreError) {
        let (dirFD, name) = try parent(of: path)
        defer { close(dirFD) }
        guard let name else { throw .init(.fsExist) }
        guard mkdirat(dirFD, name, 0o755) == 0 else { throw .fromErrno() }
        try setOwner(owner, of: path)
    }

    func remove(_ path: String) throws(FileStoreError) {
        let (dirFD, name) = try parent(of: path)
        defer { close(dirFD) }
        guard let name else { throw .init(.fsAcces) }
        let info = try statAt(dirFD, name)
        let isDirectory = (info.st_mode & S_IFMT) == S_IFDIR
        guard unlinkat(dirFD, name, isDirectory ? AT_REMOVEDIR : 0) == 0 else { throw .fromErrno() }
        _ = unlinkat(rootFD, Self.metadataName + "/" + Self.ownerKey(path), 0)
    }

    func list(_ path: String) throws(FileStoreError) -> [String] {
        let (dirFD, name) = try parent(of: path)
        defer { close(dirFD) }
        // A fresh open (never dup): a duplicated descriptor would share the directory's
        // read position with every other listing.
        let fd = openat(dirFD, name ?? ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw name.map { isSymlink(dirFD, $0) } == true ? .init(.fsAcces) : .fromErrno(code)
        }
        guard let dir = fdopendir(fd) else {
            close(fd)
            throw .fromErrno()
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let entryName = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if entryName == "." || entryName == ".." { continue }
            if name == nil && entryName == Self.metadataName { continue }
            names.append(entryName)
            if names.count >= Int(FileServiceProtocol.maximumEntries) { break }
        }
        return names.sorted()
    }

    private func openFile(_ path: String, flags: Int32) throws(FileStoreError) -> Int32 {
        let (dirFD, name) = try parent(of: path)
        defer { close(dirFD) }
        guard let name else { throw .init(.fsIsdir) }
        let info = try statAt(dirFD, name)
        if (info.st_mode & S_IFMT) == S_IFDIR { throw .init(.fsIsdir) }
        let fd = openat(dirFD, name, flags | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw errno == ELOOP ? .init(.fsAcces) : .fromErrno() }
        return fd
    }

    // MARK: owners

    /// Sidecar file name for a path: hex of the normalised path, so any name maps to one
    /// flat, safe file name.
    static func ownerKey(_ path: String) -> String {
        let normalised = "/" + ((try? components(of: path)) ?? []).joined(separator: "/")
        return "owner-" + normalised.utf8.map { String($0, radix: 16, uppercase: false).leftPadded(to: 2) }.joined()
    }

    func owner(of path: String) -> String? {
        let key = Self.metadataName + "/" + Self.ownerKey(path)
        let fd = openat(rootFD, key, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 256)
        let n = Glibc.read(fd, &bytes, bytes.count)
        guard n > 0 else { return nil }
        return String(decoding: bytes.prefix(n), as: UTF8.self)
    }

    private func setOwner(_ owner: String, of path: String) throws(FileStoreError) {
        let key = Self.metadataName + "/" + Self.ownerKey(path)
        let temp = key + ".tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        let fd = openat(rootFD, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .fromErrno() }
        let bytes = Array(owner.utf8.prefix(255))
        let ok = Glibc.write(fd, bytes, bytes.count) == bytes.count && fsync(fd) == 0
        close(fd)
        guard ok, renameat(rootFD, temp, rootFD, key) == 0 else {
            unlinkat(rootFD, temp, 0)
            throw .init(.fsIo)
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
