// The release every executable reports with --version.

public enum SecureRPCRelease {
    public static let version = "0.5.0"

    /// "NAME 0.5.0 (Secure RPC for Swift)", for ArgumentParser's `version:`.
    public static func versionLine(_ executable: String) -> String {
        "\(executable) \(version) (Secure RPC for Swift)"
    }
}
