// Where keydird listens unless told otherwise, so a securerpc.conf line can leave the port out
// on sites without rpcbind.

public enum DirectoryDefaults {
    /// keydird's TCP port (next to the example file service's 20049).
    public static let port = 20050
}
