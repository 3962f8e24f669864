// `import SecureRPC` is all an application needs: the RPC runtime (RPCClient, RPCServer,
// RPCProgram), the XDR coding it uses, and the key directory types its set-up takes
// (SQLiteKeyDirectory.defaultPath, PublicKeyFileSource for /etc/publickey, Netname) come with it.

@_exported import KeyDirectory
@_exported import ONCRPC
@_exported import XDR
