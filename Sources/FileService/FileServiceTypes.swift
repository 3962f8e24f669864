// The FILESVC wire types (FsStatus, FsAttr, FsReadArgs, …), FilesvcV1Client and the
// FilesvcV1Service protocol are generated from filesvc.x at build time by XDRGenPlugin, with
// every bound the .x file declares enforced on decode. This file adds only what the
// interface file cannot say: readable names for the statuses and the example's default port.

/// Numbers and limits of the FILESVC program, as filesvc.x declares them.
public enum FileServiceProtocol {
    public static let program: UInt32 = FilesvcV1Client.program
    public static let version: UInt32 = FilesvcV1Client.version
    public static let maximumPath = UInt32(FilesvcConstants.filesvcMaxpath)
    public static let maximumName = UInt32(FilesvcConstants.filesvcMaxname)
    public static let maximumData = UInt32(FilesvcConstants.filesvcMaxdata)
    public static let maximumEntries = UInt32(FilesvcConstants.filesvcMaxentries)
    /// The port the example server uses unless told otherwise (TCP and UDP).
    public static let defaultPort = 20049
}

/// `fs_status`: a file operation's outcome, numbered as NFS numbers them.
public typealias FileStatus = FsStatus
/// `fs_attr`: what FILESVCPROC_STAT returns.
public typealias FileAttributes = FsAttr

extension FsStatus: CustomStringConvertible {
    public var description: String {
        switch self {
        case .fsOk: return "ok"
        case .fsNoent: return "no such file or directory"
        case .fsIo: return "I/O error"
        case .fsAcces: return "permission denied"
        case .fsExist: return "file exists"
        case .fsNotdir: return "not a directory"
        case .fsIsdir: return "is a directory"
        case .fsInval: return "invalid argument"
        case .fsNospc: return "no space left"
        case .fsNametoolong: return "name too long"
        case .fsNotempty: return "directory not empty"
        }
    }
}
