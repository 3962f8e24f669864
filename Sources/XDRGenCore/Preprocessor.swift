// Runs the C preprocessor over a `.x` file the way rpcgen does, for files that use
// #include, #define or #ifdef. It trusts the system `cpp` binary and nothing in the file:
// cpp's own errors are passed on with its message. Line markers are kept (no -P) so the
// lexer can report positions in the original files.

import Foundation

/// How to invoke the C preprocessor.
public struct PreprocessorOptions: Sendable {
    /// The cpp binary; found on PATH by default.
    public var executable: String = "cpp"
    public var includeDirectories: [String] = []
    /// `-D` definitions. rpcgen defines one of `RPC_HDR`, `RPC_XDR`, `RPC_SVC`, `RPC_CLNT`
    /// for the part it generates; one Swift file plays the roles of the header (types) and
    /// the XDR routines, so both `RPC_HDR` and `RPC_XDR` are defined. In the system's files
    /// those blocks hold only `%` lines, whose `#define`s supply constants (nlm_prot.x).
    public var definitions: [String] = []

    public init(executable: String = "cpp", includeDirectories: [String] = [], definitions: [String] = []) {
        self.executable = executable
        self.includeDirectories = includeDirectories
        self.definitions = definitions
    }
}

public enum Preprocessor {
    /// Whether a file has preprocessor directives at the start of a line (after blanks),
    /// other than `%` pass-through lines.
    public static func needsPreprocessing(_ text: String) -> Bool {
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.drop(while: { $0 == " " || $0 == "\t" }).hasPrefix("#") { return true }
        }
        return false
    }

    /// Preprocesses `path`; returns the output text with line markers.
    public static func run(path: String, options: PreprocessorOptions) throws(XDRGenError) -> String {
        // Traditional mode joins backslash-continued `%` lines into one line (ISO mode keeps
        // the line breaks but drops the backslashes, splitting them into garbage) and does
        // not trip over apostrophes in pass-through text.
        var arguments = ["-traditional-cpp", "-C", "-DRPC_HDR", "-DRPC_XDR"]
        arguments += options.definitions.map { "-D" + $0 }
        arguments += options.includeDirectories.map { "-I" + $0 }
        arguments.append(path)
        let process = Process()
        if options.executable.contains("/") {
            process.executableURL = URL(fileURLWithPath: options.executable)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [options.executable] + arguments
        }
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw XDRGenError("cannot run the C preprocessor '\(options.executable)': \(error)", at: nil)
        }
        // Read both pipes concurrently with the process so a chatty cpp cannot fill one and block.
        let errorData = LockedData()
        let errorReader = Thread {
            errorData.set(errors.fileHandleForReading.readDataToEndOfFile())
        }
        errorReader.start()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !errorData.isSet { usleep(1000) }
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errorData.get(), as: UTF8.self).trimmingSpaces()
            throw XDRGenError("the C preprocessor failed on \(path):\n\(message)", at: nil)
        }
        return String(decoding: data, as: UTF8.self)
    }
}

/// A value written once by the stderr reader thread.
private final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data: Data?
    func set(_ value: Data) { lock.lock(); data = value; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return data != nil }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return data ?? Data() }
}
